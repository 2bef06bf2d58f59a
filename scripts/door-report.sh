#!/usr/bin/env bash
# door-report.sh: how much of bkt touches the outside world outside the
# door (issue 20), and its longest functions. Counts only production code:
# everything in a file from its first `#[cfg(test)]` on is left out, and so
# are the modules that ARE the door: src/vm/ctx/, src/exec.rs,
# src/settings.rs, src/download.rs and src/winiso.rs (the download's
# transport), src/main.rs. The runner count leaves out the two step types'
# own `run` (create's `step.run(ctx, ..)`, snapshot's `t.run(*step)`),
# which run no command: clippy.toml is what refuses the runner's methods.
#
#   scripts/door-report.sh [SRC_DIR]     (default: src next to this script)
#
# Each line is a count and what was counted; then the 10 longest production
# functions (file:line, length in lines from `fn` to its closing brace).
set -euo pipefail

src=${1:-"$(dirname "$0")/../src"}
cd "$src"

# The files outside the door, as paths relative to src.
outside() {
  find . -name '*.rs' -print | sed 's|^\./||' | sort |
    grep -v -E '^(vm/ctx/|exec\.rs$|settings\.rs$|download\.rs$|winiso\.rs$|main\.rs$)'
}

# Production lines of the files on stdin, as FILE:LINE:TEXT (a file's lines
# up to its first #[cfg(test)], comments left out).
production() {
  while read -r f; do
    awk -v f="$f" '/^[[:space:]]*#\[cfg\(test\)\]/ { exit }
      /^[[:space:]]*\/\// { next }
      { print f ":" FNR ":" $0 }' "$f"
  done
}

# count LABEL REGEX [FILE_FILTER_REGEX [SKIP_REGEX]]
count() {
  local label=$1 re=$2 only=${3:-.} skip=${4:-^$}
  local n
  n=$(outside | grep -E "$only" | production | grep -v -E "$skip" | grep -c -E "$re" || true)
  printf '%5d  %s\n' "$n" "$label"
}

echo "Effects outside the door (production code):"
count "println!/print!/eprintln!/eprint! in src/vm outside ctx" '(^|[^a-z_])e?print(ln)?!' '^vm/'
count "std::fs calls (fs::f(, File::open/create, OpenOptions; not rustix::fs)" '(^|[^a-z_:])(std::)?fs::[a-z_]+(::<[^>]*>)?\(|File::(open|create)|OpenOptions::new|DirBuilder::new' 
count "std::process::Command / duct" 'process::Command|Command::new|duct::'
count "runner calls (.run( .run_unchecked( .stdout() .run_into( .run_feeding( .run_attached( .start_attached( .start_tied( on_exit()" '\.(run|run_unchecked|run_into|run_feeding|run_attached|start_attached|start_tied)\(|\.stdout\(\)|Cmd::on_exit' . '(^|[^a-z_])(step\.run\(ctx, |t\.run\(\*step\))'
count "std::net::TcpStream" 'TcpStream'
count "wall clock (SystemTime::now, jiff Timestamp/Zoned::now)" 'SystemTime::now|Timestamp::now|Zoned::now'
count "std::env::var/var_os/vars" 'env::var'
count "manifest::load / manifest::update" 'manifest::(load|update)\('
count "(allowed) Instant::now, deadlines and elapsed times" 'Instant::now'

echo
echo "The 10 longest production functions in src (from fn to its closing brace):"
mapfile -t files < <(find . -name '*.rs' -print | sed 's|^\./||' | sort)
python3 - "${files[@]}" <<'PY'
import re, sys

def strip(text):
    """The text with comments, strings and char literals blanked (newlines
    kept), so that braces can be counted."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
            continue
        if text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        m = re.match(r"b?r(#*)\"", text[i:i + 300])
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = "\"" + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        if c == "\"":
            j = i + 1
            while j < n and text[j] != "\"":
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        m = re.match(r"b?'(\\.|\\u\{[0-9a-fA-F]+\}|[^\\'])'", text[i:i + 12])
        if m:
            out.append(" " * m.end())
            i += m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)")
found = []
for path in sys.argv[1:]:
    lines = strip(open(path).read()).split("\n")
    depth = 0
    skip_until = None   # depth at which a #[cfg(test)] item ends
    in_fn = None        # (name, start line, depth before its body)
    test_next = False
    for no, line in enumerate(lines, 1):
        if skip_until is None and in_fn is None and line.strip():
            if re.match(r"\s*#\[cfg\(test\)\]", line):
                test_next = True
            elif line.strip().startswith("#"):
                pass  # another attribute of the same item
            else:
                m = FN.match(line)
                is_mod = re.match(r"\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", line)
                if test_next and (m or is_mod):
                    skip_until = depth
                elif m:
                    in_fn = (m.group(7), no, depth)
                test_next = False
        for ch in line:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if in_fn and depth == in_fn[2]:
                    found.append((no - in_fn[1] + 1, f"{path}:{in_fn[1]}", in_fn[0]))
                    in_fn = None
                if skip_until is not None and depth == skip_until:
                    skip_until = None
                    test_next = False
        # A declaration without a body (a trait method): no function.
        if in_fn and depth == in_fn[2] and line.rstrip().endswith(";"):
            in_fn = None
found.sort(key=lambda t: (-t[0], t[1]))
for length, where, name in found[:10]:
    print(f"{length:5d}  {where}  {name}")
PY
