"""What personal data a web form collects: a field classifier and a form reader.

The vocabularies are data (``policies/default/privacy.yaml``); this module only normalises
text and matches it. Every text is compared after :func:`normalize`: lower case, diacritics
stripped (``đ`` -> ``d``), camelCase and snake_case split, anything that is not a letter or
digit turned into a space. So a label "Số điện thoại", a placeholder "so dien thoai" and an
input named ``soDienThoai`` all reach the same keyword.

A field's category is one of ``personal`` (basic personal data, Decree 13/2023 Art. 2.3),
``sensitive`` (Art. 2.4), ``credential`` (passwords, one-time codes, user names) or ``other``.
Hidden inputs, buttons and anti-forgery tokens are never data fields; consent checkboxes are
read separately as :class:`ConsentControl`.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup, Tag

from auditor.datafiles import load_yaml
from auditor.errors import AuditorError
from checks.web.crawl import absolute

CATEGORIES = ("sensitive", "credential", "personal", "other")
# Tie-break when two kinds match equally well: the more protective reading wins.
_CATEGORY_PRIORITY = {"sensitive": 3, "credential": 2, "personal": 1, "other": 0}
_SKIPPED_TYPES = frozenset({"hidden", "submit", "button", "reset", "image"})
_CHOICE_TYPES = frozenset({"checkbox", "radio"})
_MAX_TEXT = 400  # characters kept from any one label or context text
_MAX_FIELDS = 200  # fields read per form
_MAX_FORMS = 100  # forms read per page

# --------------------------------------------------------------------------------------------
# normalisation and keyword matching

_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_ALNUM_RE = re.compile(r"[^a-z0-9]+")


def strip_diacritics(text: str) -> str:
    """Remove Vietnamese (and other) diacritics; ``đ``/``Đ`` become ``d``/``D``."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize(text: str | None, *, split_camel: bool = True) -> str:
    """Lower-case ASCII words separated by single spaces (see the module docstring)."""
    if not text:
        return ""
    text = strip_diacritics(str(text)[:100_000_000])
    if split_camel:
        text = _CAMEL_RE.sub(" ", text)
    return _NON_ALNUM_RE.sub(" ", text.lower()).strip()


@dataclass(frozen=True)
class Keyword:
    """One vocabulary entry, pre-normalised. ``=word`` matches only the whole text;
    ``word*`` also matches longer words."""

    raw: str
    norm: str
    whole_only: bool
    prefix: bool

    @property
    def compact(self) -> str:
        return self.norm.replace(" ", "")

    @classmethod
    def parse(cls, raw: str) -> Keyword | None:
        text = str(raw).strip()
        whole = text.startswith("=")
        prefix = text.endswith("*")
        norm = normalize(text.strip("=*"), split_camel=False)
        if not norm:
            return None
        return cls(raw=text, norm=norm, whole_only=whole, prefix=prefix)


class KeywordSet:
    """A list of keywords compiled for searching normalised text."""

    def __init__(self, words: list[str] | tuple[str, ...]) -> None:
        self.keywords: list[Keyword] = [k for k in (Keyword.parse(w) for w in words or []) if k]
        loose = [k for k in self.keywords if not k.whole_only]
        self._whole = {k.norm: k for k in self.keywords if k.whole_only}
        # Longest first so that the alternation reports the most specific keyword.
        loose.sort(key=lambda k: -len(k.norm))
        self._by_norm = {k.norm: k for k in loose}
        if loose:
            alternatives = [re.escape(k.norm) + ("" if k.prefix else r"(?![a-z0-9])") for k in loose]
            self._regex: re.Pattern[str] | None = re.compile(r"(?<![a-z0-9])(?:" + "|".join(alternatives) + ")")
        else:
            self._regex = None

    def __bool__(self) -> bool:
        return bool(self.keywords)

    def find(self, norm_text: str) -> Keyword | None:
        """The longest keyword found in ``norm_text`` (already normalised), or None."""
        if not norm_text:
            return None
        best: Keyword | None = self._whole.get(norm_text)
        if self._regex is not None:
            for match in self._regex.finditer(norm_text):
                hit = match.group(0)
                kw = self._by_norm.get(hit) or self._prefix_owner(hit)
                if kw is not None and (best is None or len(kw.norm) > len(best.norm)):
                    best = kw
        return best

    def _prefix_owner(self, hit: str) -> Keyword | None:
        for kw in self._by_norm.values():
            if kw.prefix and hit.startswith(kw.norm):
                return kw
        return None

    def find_in_identifier(self, norm_ident: str) -> Keyword | None:
        """Like :meth:`find`, plus keywords of 4+ letters inside run-together words."""
        best = self.find(norm_ident)
        compact = norm_ident.replace(" ", "")
        if len(compact) >= 4:
            for kw in self.keywords:
                c = kw.compact
                if kw.whole_only or len(c) < 4 or c not in compact:
                    continue
                if best is None or len(c) > len(best.compact):
                    best = kw
        return best

    def matches(self, norm_text: str) -> bool:
        return self.find(norm_text) is not None


# --------------------------------------------------------------------------------------------
# vocabulary


@dataclass(frozen=True)
class FieldKind:
    """A kind of form field (``phone``, ``religion``...) with its category and legal source."""

    name: str
    category: str
    article: str
    keywords: KeywordSet
    autocomplete: frozenset[str]
    identifier: bool = False
    file_only: bool = False


@dataclass(frozen=True)
class NoticeItem:
    name: str
    label: str
    article: str
    keywords: KeywordSet


@dataclass
class Vocabulary:
    """Everything the privacy check matches, loaded from ``privacy.yaml``."""

    version: str
    kinds: list[FieldKind]
    ignored_names: frozenset[str]
    account_wording: KeywordSet
    search_wording: KeywordSet
    consent_wording: KeywordSet
    refusal_wording: KeywordSet
    purposes: dict[str, KeywordSet]
    policy_link: KeywordSet
    policy_href: KeywordSet
    notice_items: list[NoticeItem]
    contact_link: KeywordSet
    sensitive_notice: KeywordSet
    articles: dict[str, str] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def kind(self, name: str) -> FieldKind | None:
        for k in self.kinds:
            if k.name == name:
                return k
        return None


_cache: dict[tuple[str, ...], Vocabulary] = {}
_cache_lock = threading.Lock()


def _read_yaml(path: Path) -> dict[str, Any]:
    data = load_yaml(path, "privacy vocabulary")
    if not isinstance(data, dict):
        raise AuditorError(f"{path}: expected a mapping at top level")
    return data


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_vocabulary(files: Sequence[str | Path]) -> Vocabulary:
    """The vocabulary ``files`` (the policy's layers: bundled first), each merged over the one before (cached)."""
    if not files:
        raise AuditorError("privacy vocabulary: no file given")
    key = tuple(str(p) for p in files)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    data = _read_yaml(Path(files[0]))
    for path in files[1:]:
        data = _merge(data, _read_yaml(Path(path)))
    vocab = _build_vocabulary(data, Path(files[-1]))
    with _cache_lock:
        _cache[key] = vocab
    return vocab


def _words(node: Any, where: str) -> list[str]:
    if node is None:
        return []
    if isinstance(node, dict):
        node = node.get("keywords")
    if not isinstance(node, list) or not all(isinstance(w, str | int | float) for w in node):
        raise AuditorError(f"privacy vocabulary: {where} must be a list of words")
    return [str(w) for w in node]


def _build_vocabulary(data: dict[str, Any], path: Path) -> Vocabulary:
    try:
        kinds: list[FieldKind] = []
        for name, spec in (data.get("fields") or {}).items():
            category = str(spec.get("category", "")).lower()
            if category not in CATEGORIES:
                raise AuditorError(f"{path}: field kind {name!r} has unknown category {category!r}")
            if not spec.get("article"):
                raise AuditorError(f"{path}: field kind {name!r} names no legal article")
            kinds.append(FieldKind(
                name=str(name),
                category=category,
                article=str(spec["article"]),
                keywords=KeywordSet(_words(spec, f"fields.{name}")),
                autocomplete=frozenset(str(a).lower() for a in spec.get("autocomplete") or []),
                identifier=bool(spec.get("identifier", False)),
                file_only=bool(spec.get("file_only", False)),
            ))
        forms = data.get("forms") or {}
        consent = data.get("consent") or {}
        notice = data.get("notice") or {}
        purposes = (consent.get("purposes") or {}).get("groups") or {}
        items: list[NoticeItem] = []
        for name, spec in (notice.get("required_items") or {}).items():
            items.append(NoticeItem(
                name=str(name), label=str(spec.get("label") or name), article=str(spec.get("article") or ""),
                keywords=KeywordSet(_words(spec, f"notice.required_items.{name}")),
            ))
        articles = {
            "policy_link": str((notice.get("policy_link") or {}).get("article", "")),
            "sensitive_notice": str((notice.get("sensitive_notice") or {}).get("article", "")),
            "consent": str((consent.get("wording") or {}).get("article", "")),
            "purposes": str((consent.get("purposes") or {}).get("article", "")),
        }
        contact = (notice.get("required_items") or {}).get("contact") or {}
        return Vocabulary(
            version=str(data.get("version", "")),
            kinds=kinds,
            ignored_names=frozenset(normalize(n, split_camel=False) for n in data.get("ignored_field_names") or []),
            account_wording=KeywordSet(_words(forms.get("account_wording"), "forms.account_wording")),
            search_wording=KeywordSet(_words(forms.get("search_wording"), "forms.search_wording")),
            consent_wording=KeywordSet(_words(consent.get("wording"), "consent.wording")),
            refusal_wording=KeywordSet(_words(consent.get("refusal"), "consent.refusal")),
            purposes={str(k): KeywordSet(_words(v, f"consent.purposes.{k}")) for k, v in purposes.items()},
            policy_link=KeywordSet(_words(notice.get("policy_link"), "notice.policy_link")),
            policy_href=KeywordSet(_words((notice.get("policy_link") or {}).get("href_keywords"),
                                          "notice.policy_link.href_keywords")),
            notice_items=items,
            contact_link=KeywordSet(_words(contact, "notice.required_items.contact")),
            sensitive_notice=KeywordSet(_words(notice.get("sensitive_notice"), "notice.sensitive_notice")),
            articles=articles,
            sources=dict(data.get("sources") or {}),
        )
    except AttributeError as exc:
        raise AuditorError(f"{path}: invalid privacy vocabulary ({exc})") from None


# --------------------------------------------------------------------------------------------
# fields


@dataclass
class FieldText:
    """What a page says about one input, raw (as the site sent it, bounded)."""

    tag: str = "input"
    type: str = "text"
    name: str = ""
    id: str = ""
    label: str = ""
    placeholder: str = ""
    autocomplete: str = ""
    title: str = ""
    context: str = ""  # nearby text, used only when nothing else names the field
    value: str = ""
    checked: bool = False
    required: bool = False


@dataclass
class FieldInfo:
    """A classified form field."""

    text: FieldText
    kind: str
    category: str
    matched: str
    article: str = ""
    identifier: bool = False

    @property
    def is_password(self) -> bool:
        return self.text.type == "password" or self.kind == "password"

    def to_dict(self) -> dict[str, Any]:
        t = self.text
        out: dict[str, Any] = {"tag": t.tag, "type": t.type, "name": t.name[:100]}
        if t.id and t.id != t.name:
            out["id"] = t.id[:100]
        if t.label:
            out["label"] = t.label[:120]
        if t.placeholder:
            out["placeholder"] = t.placeholder[:120]
        if t.autocomplete:
            out["autocomplete"] = t.autocomplete[:60]
        out.update(category=self.category, kind=self.kind or None, matched=self.matched[:160])
        if self.article:
            out["article"] = self.article
        return out


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def classify_field(text: FieldText, vocab: Vocabulary) -> FieldInfo:
    """Decide what one field collects (see the module docstring)."""
    ftype = (text.type or "text").lower()
    if ftype == "password":
        kind = vocab.kind("password")
        return FieldInfo(text, "password", "credential", "type=password",
                         kind.article if kind else "", identifier=False)
    if text.name and (normalize(text.name) in vocab.ignored_names
                      or normalize(text.name, split_camel=False) in vocab.ignored_names):
        return FieldInfo(text, "", "other", f"ignored name {_short(text.name)!r}")
    kinds = [k for k in vocab.kinds if _can_hold(k, ftype)]
    # autocomplete tokens are explicit: "section-x shipping street-address" -> last token.
    tokens = [t for t in text.autocomplete.lower().split() if t not in ("on", "off")]
    if tokens:
        for kind in kinds:
            if tokens[-1] in kind.autocomplete:
                return _info(text, kind, f"autocomplete={tokens[-1]}")
    candidates: list[tuple[int, int, FieldKind, str]] = []
    sources = (
        ("label", text.label, False), ("aria/title", text.title, False),
        ("placeholder", text.placeholder, False), ("name", text.name, True), ("id", text.id, True),
    )
    for source, raw, is_ident in sources:
        if not raw:
            continue
        norm = normalize(raw[:_MAX_TEXT])
        for kind in kinds:
            kw = kind.keywords.find_in_identifier(norm) if is_ident else kind.keywords.find(norm)
            if kw is not None:
                candidates.append((len(kw.compact), _CATEGORY_PRIORITY[kind.category], kind,
                                   f"{source} {_short(raw)!r}"))
    if not candidates:
        hinted = {"email": "email", "tel": "phone"}.get(ftype)
        kind = vocab.kind(hinted) if hinted else None
        if kind is not None:
            return _info(text, kind, f"type={ftype}")
        if text.context:
            norm = normalize(text.context[:_MAX_TEXT])
            for kind in kinds:
                kw = kind.keywords.find(norm)
                if kw is not None:
                    candidates.append((len(kw.compact), _CATEGORY_PRIORITY[kind.category], kind,
                                       f"nearby text {_short(text.context)!r}"))
    if not candidates:
        return FieldInfo(text, "", "other", "no personal-data keyword")
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    _, _, kind, matched = candidates[0]
    return _info(text, kind, matched)


def _can_hold(kind: FieldKind, ftype: str) -> bool:
    """Whether an input of type ``ftype`` can carry data of ``kind``.

    Images of identity documents come only from file inputs. A checkbox or radio button sends
    a value the site wrote, never a secret or an account identifier the user types: the
    "Hiển thị mật khẩu" and "Ghi nhớ tài khoản" boxes of a login form are neither.
    """
    if kind.file_only and ftype != "file":
        return False
    return not (ftype in _CHOICE_TYPES and (kind.category == "credential" or kind.identifier))


def _info(text: FieldText, kind: FieldKind, matched: str) -> FieldInfo:
    return FieldInfo(text, kind.name, kind.category, matched, kind.article, identifier=kind.identifier)


# --------------------------------------------------------------------------------------------
# forms


@dataclass
class ConsentControl:
    """A checkbox or radio button that gives (or refuses) consent."""

    type: str
    name: str
    label: str
    checked: bool
    purposes: list[str]
    refusal: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name[:100], "label": _short(self.label, 200),
                "checked": self.checked, "purposes": self.purposes, "refusal": self.refusal}


@dataclass
class FormInfo:
    """One form on one page, read and classified.

    ``role`` is ``personal`` (collects personal data), ``login`` (only existing credentials:
    one account identifier and at most one password), ``search`` or ``other``.
    """

    index: int
    page_url: str
    action: str
    action_url: str | None
    method: str
    fields: list[FieldInfo]
    consents: list[ConsentControl]
    text: str
    role: str = "other"

    @property
    def personal_fields(self) -> list[FieldInfo]:
        return [f for f in self.fields if f.category in ("personal", "sensitive")]

    @property
    def sensitive_fields(self) -> list[FieldInfo]:
        return [f for f in self.fields if f.category == "sensitive"]

    @property
    def credential_fields(self) -> list[FieldInfo]:
        return [f for f in self.fields if f.category == "credential"]

    @property
    def signature(self) -> tuple[str, str, tuple[str, ...]]:
        """Same action as written, method and field names: the same form (a footer form on
        every page, whose empty or relative action resolves differently on each page)."""
        return (self.action.strip(), self.method, tuple(f.text.name or f.text.id for f in self.fields))

    def evidence(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "action": self.action[:300] if self.action else "",
            "action_url": (self.action_url or "")[:300],
            "method": self.method.upper(),
            "role": self.role,
        }

    def field_dicts(self, only: str | None = None) -> list[dict[str, Any]]:
        fields = self.fields if only is None else [f for f in self.fields if f.category in only.split(",")]
        return [f.to_dict() for f in fields[:60]]


def _text_of(node: Tag | None, limit: int = _MAX_TEXT) -> str:
    if node is None:
        return ""
    try:
        text = node.get_text(" ", strip=True)
    except Exception:  # a pathological tree must not stop the check
        return ""
    return " ".join(text[: limit * 4].split())[:limit]


def _attr(node: Tag, name: str) -> str:
    value = node.get(name)
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    return str(value or "")[:_MAX_TEXT].strip()


class _PageIndex:
    """Per-page lookups: label[for] texts, elements by id, inputs attached with form=."""

    def __init__(self, soup: BeautifulSoup) -> None:
        self.labels_for: dict[str, list[str]] = {}
        self.by_id: dict[str, Tag] = {}
        self.attached: dict[str, list[Tag]] = {}
        for node in soup.find_all(True, limit=200_000):
            if not isinstance(node, Tag):
                continue
            node_id = _attr(node, "id")
            if node_id and node_id not in self.by_id:
                self.by_id[node_id] = node
            if node.name == "label" and _attr(node, "for"):
                self.labels_for.setdefault(_attr(node, "for"), []).append(_text_of(node))
            elif node.name in ("input", "select", "textarea") and _attr(node, "form"):
                self.attached.setdefault(_attr(node, "form"), []).append(node)


def _label_text(node: Tag, index: _PageIndex) -> tuple[str, str]:
    """(label text, aria/title text) for a control."""
    parts: list[str] = []
    node_id = _attr(node, "id")
    if node_id:
        parts.extend(index.labels_for.get(node_id, []))
    parent_label = node.find_parent("label")
    if parent_label is not None:
        parts.append(_text_of(parent_label))
    aria: list[str] = []
    if _attr(node, "aria-label"):
        aria.append(_attr(node, "aria-label"))
    for ref in _attr(node, "aria-labelledby").split()[:5]:
        target = index.by_id.get(ref)
        if target is not None:
            aria.append(_text_of(target))
    if _attr(node, "title"):
        aria.append(_attr(node, "title"))
    return " ".join(p for p in parts if p)[:_MAX_TEXT], " ".join(aria)[:_MAX_TEXT]


def _nearby_text(node: Tag, *, after: bool) -> str:
    """Text right before (table/grid layouts) or after (checkbox labels) a control."""
    out: list[str] = []
    size = 0
    stream = node.next_elements if after else node.previous_elements
    for steps, element in enumerate(stream):
        if steps > 60 or size > 200:
            break
        if isinstance(element, Tag):
            if element.name in ("input", "select", "textarea", "button", "form"):
                break
            if element.name in ("script", "style"):
                continue
            continue
        if element.parent is not None and element.parent.name in ("script", "style", "option"):
            continue
        text = " ".join(str(element).split())
        if text:
            out.append(text)
            size += len(text)
    if not after:
        out.reverse()
    return " ".join(out)[:_MAX_TEXT]


def _form_controls(form: Tag, index: _PageIndex) -> list[Tag]:
    controls = [c for c in form.find_all(["input", "select", "textarea"], limit=_MAX_FIELDS)]
    form_id = _attr(form, "id")
    if form_id:
        for extra in index.attached.get(form_id, []):
            if extra not in controls:
                controls.append(extra)
    return controls[:_MAX_FIELDS]


def _action_url(action: str, base: str, page_url: str) -> str | None:
    """Where the form submits: no action is the page itself, ``#...`` the base URL; None for
    other schemes (``javascript:``) or junk."""
    if not action:
        return absolute(page_url, page_url)
    if action.startswith("#"):
        return absolute(base, base)
    return absolute(base, action)


def read_forms(soup: BeautifulSoup, page_url: str, vocab: Vocabulary, *, base_url: str | None = None,
               page_title: str = "") -> list[FormInfo]:
    """Every form of a parsed page, with classified fields, consent controls and a role."""
    index = _PageIndex(soup)
    base = base_url or page_url
    forms: list[FormInfo] = []
    for i, form in enumerate(soup.find_all("form", limit=_MAX_FORMS)):
        if not isinstance(form, Tag):
            continue
        action = str(form.get("action") or "").strip()
        method = (_attr(form, "method") or "get").lower()
        if method not in ("get", "post", "dialog"):
            method = "get"  # browsers treat unknown methods as GET
        # Per HTML, a submit button's formaction/formmethod override the form's.
        for button in form.find_all(["button", "input"], limit=50):
            default = "submit" if button.name == "button" else "text"
            if isinstance(button, Tag) and (_attr(button, "type") or default).lower() in ("submit", "image"):
                if button.get("formaction") is not None:
                    action = str(button.get("formaction") or "").strip()
                if _attr(button, "formmethod").lower() in ("get", "post"):
                    method = _attr(button, "formmethod").lower()
                break
        action_url = _action_url(action, base, page_url)
        fields: list[FieldInfo] = []
        consents: list[ConsentControl] = []
        for control in _form_controls(form, index):
            item = _read_control(control, index, vocab)
            if isinstance(item, ConsentControl):
                consents.append(item)
            elif item is not None:
                fields.append(item)
        values = [_attr(b, "value") for b in form.find_all("input", limit=50)
                  if isinstance(b, Tag) and _attr(b, "type").lower() in ("submit", "button")]
        text = normalize(" ".join([page_title, _text_of(form, 2000), *values]))
        info = FormInfo(i, page_url, action, action_url, method, fields, consents, text)
        buttons = normalize(" ".join([*values, *(_text_of(b, 100) for b in form.find_all("button", limit=20))]))
        is_search = _attr(form, "role").lower() == "search" or vocab.search_wording.find(buttons) is not None
        info.role = form_role(info, vocab, is_search=is_search)
        forms.append(info)
    return forms


def _read_control(node: Tag, index: _PageIndex, vocab: Vocabulary) -> FieldInfo | ConsentControl | None:
    tag = node.name
    ftype = (_attr(node, "type").lower() or "text") if tag == "input" else tag
    if ftype in _SKIPPED_TYPES:
        return None
    label, aria = _label_text(node, index)
    text = FieldText(
        tag=tag, type=ftype, name=_attr(node, "name"), id=_attr(node, "id"), label=label,
        placeholder=_attr(node, "placeholder"), autocomplete=_attr(node, "autocomplete"), title=aria,
        value=_attr(node, "value"), checked=node.has_attr("checked") or node.has_attr("selected"),
        required=node.has_attr("required"),
    )
    if ftype in _CHOICE_TYPES:
        if not label and not aria:
            parent = node.parent
            own = _text_of(parent) if parent is not None and len(parent.find_all("input", limit=3)) == 1 else ""
            text.context = own or _nearby_text(node, after=True)
        consent = as_consent(text, vocab)
        if consent is not None:
            return consent
    elif not label and not aria:
        text.context = _nearby_text(node, after=False)
    return classify_field(text, vocab)


def as_consent(text: FieldText, vocab: Vocabulary) -> ConsentControl | None:
    """A checkbox/radio whose text gives consent or names a purpose (newsletter, sharing...)."""
    said = " ".join(p for p in (text.label, text.title, text.context) if p)
    norm = normalize(said)
    ident = normalize(f"{text.name} {text.id} {text.value}")
    purposes = [name for name, words in vocab.purposes.items() if words.find(norm)]
    consent_words = vocab.consent_wording.find(norm) or vocab.consent_wording.find_in_identifier(ident)
    if consent_words is None and not any(p != "service" for p in purposes):
        return None
    refusal = bool(vocab.refusal_wording.find(norm)) or normalize(text.value) in ("no", "khong", "0", "false")
    return ConsentControl(type=text.type, name=text.name or text.id, label=said or text.name,
                          checked=text.checked, purposes=purposes, refusal=refusal)


def form_role(form: FormInfo, vocab: Vocabulary, *, is_search: bool = False) -> str:
    """``personal``, ``login``, ``search`` or ``other`` (see :class:`FormInfo`).

    ``is_search``: the form says it searches (``role="search"``, or search wording on its
    buttons). A search box whose one field names what is looked for ("Tìm bệnh, thuốc...",
    "Tìm địa chỉ") is still a search box.
    """
    personal = form.personal_fields
    creds = form.credential_fields
    searching = is_search or any(f.text.type == "search" for f in form.fields)
    if not personal and not creds:
        return "search" if searching or vocab.search_wording.find(form.text) else "other"
    if len(personal) == 1 and not creds and not form.consents:
        said = personal[0].text
        if searching or vocab.search_wording.find(normalize(f"{said.label} {said.title} {said.placeholder}")):
            return "search"
    if form.sensitive_fields:
        return "personal"
    passwords = [f for f in form.fields if f.is_password]
    new_password = any("new-password" in f.text.autocomplete.lower() for f in form.fields)
    identifiers = [f for f in form.fields if f.identifier and not f.is_password]
    others = [f for f in form.fields if f.category != "other" and not f.identifier and not f.is_password]
    only_account = not new_password and len(passwords) <= 1 and len(identifiers) <= 1 and not others
    if only_account and (passwords or vocab.account_wording.find(form.text)):
        return "login"
    if not personal:
        # Credentials only (e.g. a one-time code): not a collection of personal data.
        return "login"
    return "personal"


__all__ = [
    "ConsentControl",
    "FieldInfo",
    "FieldText",
    "FormInfo",
    "KeywordSet",
    "Vocabulary",
    "as_consent",
    "classify_field",
    "form_role",
    "load_vocabulary",
    "normalize",
    "read_forms",
    "strip_diacritics",
]
