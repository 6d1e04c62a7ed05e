#!/usr/bin/env python3
"""Clang's thread-safety analysis over lumen sources, without a clang build.

Takes the compile commands of the gcc build (compile_commands.json) and
runs `clang++ -fsyntax-only -Wthread-safety -Werror=thread-safety` on each
source under the given directories, so the ABSL_GUARDED_BY contracts of
their absl::Mutex locks are checked by the compiler. Usage:

  scripts/thread_safety.py build/release/compile_commands.json serve common
"""
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys


def clang_args(entry):
    args = entry.get("arguments") or shlex.split(entry["command"])
    out = ["clang++"]
    skip = False
    for a in args[1:]:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
            continue
        if a in ("-c", "-MD", "-MMD") or a == entry["file"]:
            continue
        if a.startswith("-Werror") or a.startswith("-fsanitize"):
            continue
        out.append(a)
    return out + ["-fsyntax-only", "-Wno-everything", "-Wthread-safety",
                  "-Werror=thread-safety", entry["file"]]


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    db = json.load(open(sys.argv[1]))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # Folders (every source below) or single source files.
    dirs = [os.path.join(root, d) + ("" if d.endswith(".cc") else os.sep) for d in sys.argv[2:]]
    entries = [e for e in db
               if any(e["file"].startswith(d) for d in dirs)
               and not e["file"].endswith("_test.cc")]
    if not entries:
        print("thread-safety: no sources under", " ".join(sys.argv[2:]))
        return 1
    failed = 0

    def run(e):
        p = subprocess.run(clang_args(e), cwd=e["directory"], capture_output=True, text=True)
        return e["file"], p.returncode, p.stdout + p.stderr

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for path, rc, text in pool.map(run, entries):
            if rc != 0:
                failed += 1
                print(text, end="")
    print(f"thread-safety: {len(entries)} files, {failed} with errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
