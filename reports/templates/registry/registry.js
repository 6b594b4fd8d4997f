(function () {
  "use strict";
  var FIELDS = ["q", "assessed", "status", "level", "grade"];
  var form = document.getElementById("filters");
  var shown = document.getElementById("shown");
  var noMatch = document.getElementById("no-match");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#registry tbody tr:not(.empty)"));

  // Lower case without diacritics, so that "ha noi" finds "Hà Nội".
  function norm(text) {
    return String(text || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "")
      .replace(/\u0111/g, "d").replace(/\u0110/g, "d").toLowerCase().trim();
  }
  rows.forEach(function (tr) { tr.setAttribute("data-norm", norm(tr.getAttribute("data-search"))); });

  function readHash() {
    var out = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      if (!part) { return; }
      var i = part.indexOf("=");
      var key, value;
      try {
        key = decodeURIComponent(i < 0 ? part : part.slice(0, i));
        value = i < 0 ? "" : decodeURIComponent(part.slice(i + 1).replace(/\+/g, " "));
      } catch (e) { return; }
      if (FIELDS.indexOf(key) >= 0) { out[key] = value; }
    });
    return out;
  }

  function writeHash(f) {
    var parts = [];
    FIELDS.forEach(function (k) { if (f[k]) { parts.push(k + "=" + encodeURIComponent(f[k])); } });
    var hash = parts.length ? "#" + parts.join("&") : " ";
    try { history.replaceState(null, "", hash === " " ? location.pathname + location.search : hash); }
    catch (e) { location.hash = hash; }
  }

  function fromForm() {
    var f = {};
    FIELDS.forEach(function (k) { f[k] = form.elements[k].value; });
    return f;
  }

  function apply(f) {
    var q = norm(f.q);
    var count = 0;
    FIELDS.forEach(function (k) {
      var el = form.elements[k];
      if (el.value !== (f[k] || "")) { el.value = f[k] || ""; }
    });
    rows.forEach(function (tr) {
      var ok = (!q || tr.getAttribute("data-norm").indexOf(q) >= 0) &&
        (!f.assessed || tr.getAttribute("data-assessed") === f.assessed) &&
        (!f.status || tr.getAttribute("data-status") === f.status) &&
        (!f.level || tr.getAttribute("data-level") === f.level) &&
        (!f.grade || tr.getAttribute("data-grade") === f.grade);
      tr.hidden = !ok;
      if (ok) { count += 1; }
    });
    shown.textContent = String(count);
    noMatch.hidden = count !== 0 || rows.length === 0;
    document.body.setAttribute("data-filtered", "1");
  }

  form.addEventListener("submit", function (e) { e.preventDefault(); });
  form.addEventListener("input", function () { var f = fromForm(); writeHash(f); apply(f); });
  form.addEventListener("change", function () { var f = fromForm(); writeHash(f); apply(f); });
  window.addEventListener("hashchange", function () { apply(readHash()); });
  apply(readHash());
}());
