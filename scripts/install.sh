#!/usr/bin/env bash
# Installs everything auditor needs on a fresh Debian/Ubuntu machine, then the package itself.
#   System: nmap (ports check), poppler-utils (pdftotext/pdftoppm for report tests),
#           fonts with Vietnamese glyphs (WeasyPrint segfaults with no font at all),
#           Pango/HarfBuzz for WeasyPrint, zbar (QR decoding in tests), chromium (registry tests),
#           postgresql (the tests start a throwaway server on 127.0.0.1 to prove the PostgreSQL path),
#           redis-server (the Celery broker; the tests start their own on a loopback port),
#           knot + knot-dnsutils (authoritative DNS for the signed lab zones of the dns tests),
#           unbound (the validating resolver of the dns tests, with the lab's trust anchor),
#           npm, only where no npm is on the PATH already (installs axe-core, the accessibility
#           engine the portal check injects into Chromium).
#   Python: this package with its test and PostgreSQL extras, in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(nmap poppler-utils fonts-dejavu-core fonts-noto-core libpango-1.0-0 libpangoft2-1.0-0
              libharfbuzz-subset0 libzbar0 chromium postgresql redis-server knot knot-dnsutils unbound)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# axe-core 4 (the portal check's accessibility engine) from the npm registry, under the tool's data
# directory where checks/portal/a11y.py looks for it ($AUDITOR_AXE_JS overrides the path).
AXE_PREFIX="${XDG_DATA_HOME:-${HOME:-/root}/.local/share}/auditor"
if [ ! -f "$AXE_PREFIX/node_modules/axe-core/axe.min.js" ]; then
  mkdir -p "$AXE_PREFIX"
  npm install --silent --no-audit --no-fund --prefix "$AXE_PREFIX" "axe-core@4" >/dev/null
fi
echo "axe-core: $AXE_PREFIX/node_modules/axe-core/axe.min.js"

python3 -m pip install -q --upgrade "setuptools>=77" wheel
python3 -m pip install -q -e ".[test,postgres]"
echo "auditor installed: $(command -v auditor)"
