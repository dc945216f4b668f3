#!/usr/bin/env python3
"""Count a `go test -json` log as "<passed> <failed>".

Leaf tests are counted (a parent whose subtests are counted is not counted again), so that Watermill's universal
test tables show how many behaviours passed. A test that started but never finished (the binary timed out or
crashed) is a failure, and so is a package that failed without any failing test (a build error, a panic in init).
"""
import json
import sys


def count(path):
    started, final, pkg_failed = {}, {}, set()
    pkg_seen, raw_errors = set(), 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                raw_errors += 1 if line.strip() else 0
                continue
            pkg, test, action = ev.get("Package", ""), ev.get("Test"), ev.get("Action")
            pkg_seen.add(pkg)
            if test is None:
                if action == "fail":
                    pkg_failed.add(pkg)
                continue
            key = (pkg, test)
            if action == "run":
                started[key] = True
            elif action in ("pass", "fail", "skip"):
                final[key] = action
    keys = set(started) | set(final)
    parents = {(p, t.rsplit("/", 1)[0]) for (p, t) in keys if "/" in t}
    passed = failed = 0
    failing_pkgs = set()
    for key in keys:
        if key in parents:
            continue
        result = final.get(key, "fail")
        if result == "pass":
            passed += 1
        elif result == "fail":
            failed += 1
            failing_pkgs.add(key[0])
    # A failed package with no failing leaf: build error, timeout outside a test, panic in init.
    failed += len(pkg_failed - failing_pkgs)
    if not keys and not pkg_seen and raw_errors:
        failed += 1
    return passed, failed


if __name__ == "__main__":
    p, f = count(sys.argv[1])
    print(p, f)
