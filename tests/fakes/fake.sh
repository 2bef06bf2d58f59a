#!/bin/sh
# A stand-in for virsh, virt-install, qemu-img, ...: installed under those
# names in a directory that REPLACES PATH for the binary under test.
# It logs its argv to $FAKE_DIR/log (fields separated by \037, one call per
# line, then LC_ALL=VALUE and RDP_PASSWORD=set|unset: whether
# BKT_VM_RDP_PASSWORD reached it, never its value) and answers from the
# first rule in $FAKE_DIR/rules that matches:
#   N.match  "TOOL<TAB>GLOB"   GLOB is matched against "$*"
#   N.times  uses left (optional; 0 = rule exhausted)
#   N.sh     sourced before answering (optional side effects)
#   N.out / N.err / N.code   stdout, stderr, exit status (default 0)
# No rule: exit 97 with a message, so an unexpected call fails loudly.
tool=${0##*/}
fake_pw_seen="unset"
[ -n "${BKT_VM_RDP_PASSWORD+x}" ] && fake_pw_seen="set"
# One write of the whole line: fakes that run at once (a detached client,
# bkt's polls) never interleave their lines.
fake_line=$(
  printf '%s' "$tool"
  for a in "$@"; do printf '\037%s' "$a"; done
  printf '\037LC_ALL=%s' "${LC_ALL-}"
  printf '\037RDP_PASSWORD=%s' "$fake_pw_seen"
)
printf '%s\n' "$fake_line" >>"$FAKE_DIR/log"
args="$*"
tab=$(printf '\t')
for m in "$FAKE_DIR"/rules/*.match; do
  [ -e "$m" ] || break
  r=${m%.match}
  IFS= read -r line <"$m"
  [ "${line%%"$tab"*}" = "$tool" ] || continue
  pat=${line#*"$tab"}
  # shellcheck disable=SC2254
  case "$args" in $pat) ;; *) continue ;; esac
  if [ -e "$r.times" ]; then
    IFS= read -r n <"$r.times"
    [ "$n" -gt 0 ] || continue
    echo $((n - 1)) >"$r.times"
  fi
  # shellcheck disable=SC1090
  [ -e "$r.sh" ] && . "$r.sh"
  [ -e "$r.out" ] && /bin/cat "$r.out"
  [ -e "$r.err" ] && /bin/cat "$r.err" >&2
  code=0
  [ -e "$r.code" ] && IFS= read -r code <"$r.code"
  exit "$code"
done
echo "fake $tool: no rule for: $args" >&2
exit 97
