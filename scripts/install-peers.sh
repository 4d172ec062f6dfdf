#!/usr/bin/env bash
# Install and start the real peers the tests and benchmarks talk to. Idempotent; fails loudly.
#   Debian: dcmtk (modality tools), orthanc + orthanc-dicomweb (remote PACS, STOW-RS server,
#   storage commitment peer), xorriso (optical media), prometheus (promtool for alert rules).
#   chromium + chromium-driver (a real headless browser for the OHIF viewer test).
#   rsyslog + rsyslog-gnutls (the audit trail's syslog receiver, plain TCP and TLS).
#   PostgreSQL: the server that runs on this machine (started here if it is stopped).
set -euo pipefail

need=()
[[ -x /usr/bin/storescu && -x /usr/bin/findscu && -x /usr/bin/dcmdump ]] || need+=(dcmtk)
[[ -x /usr/sbin/Orthanc ]] || need+=(orthanc)
ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so* >/dev/null 2>&1 \
  || ls /usr/lib/orthanc/*DicomWeb* >/dev/null 2>&1 || need+=(orthanc-dicomweb)
command -v xorriso >/dev/null || need+=(xorriso)
command -v promtool >/dev/null || need+=(prometheus)
[[ -x /usr/bin/chromium ]] || need+=(chromium)
[[ -x /usr/bin/chromedriver ]] || need+=(chromium-driver)
[[ -x /usr/sbin/rsyslogd ]] || need+=(rsyslog)
ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 || need+=(rsyslog-gnutls)

if ((${#need[@]})); then
  echo "install-peers: installing ${need[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  # The packages may try to start system services; policy-rc.d refusals are expected here.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" \
    >/tmp/dicomvault-apt.log 2>&1 || { tail -30 /tmp/dicomvault-apt.log; exit 1; }
fi

# rsyslog as a system service is not what the tests use: each test starts its own.
if pgrep -x rsyslogd >/dev/null && [[ -f /etc/init.d/rsyslog ]]; then
  /etc/init.d/rsyslog stop >/dev/null 2>&1 || true
fi

# Orthanc as a system service would grab 4242/8042 on all interfaces: tests run their own.
if pgrep -x Orthanc >/dev/null && [[ -f /etc/init.d/orthanc ]]; then
  /etc/init.d/orthanc stop >/dev/null 2>&1 || true
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
    echo "install-peers: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  pg_isready -h 127.0.0.1 -p 5432 || { echo "install-peers: PostgreSQL is not running on 127.0.0.1:5432" >&2; exit 1; }
fi

for tool in /usr/bin/storescu /usr/bin/findscu /usr/bin/movescu /usr/bin/getscu /usr/bin/echoscu \
            /usr/bin/storescp /usr/bin/dcmdump /usr/sbin/Orthanc "$(command -v xorriso)" "$(command -v promtool)" \
            /usr/bin/chromium /usr/bin/chromedriver /usr/sbin/rsyslogd; do
  [[ -x $tool ]] || { echo "install-peers: missing $tool" >&2; exit 1; }
done
echo "install-peers: dcmtk $(/usr/bin/storescu --version | head -1 | awk '{print $3}'), Orthanc, xorriso, promtool, chromium, rsyslog, PostgreSQL ready"
