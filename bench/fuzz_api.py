"""Fuzz the whole HTTP API with schemathesis (tests/security/fuzzing.py), 10,000+ requests.

An open app and one with API keys serve G2P and the RunPod demo handler on a local Ray;
every operation of `/openapi.json` gets up to `--examples` generated requests per pinned
path and generation mode. Prints the requests sent, the status histogram, the 5xx count,
`/health` afterwards and each ingress replica's RSS before and after; exits non-zero when
a request got a 5xx (or a keyless one no 401), health fails or an ingress grew by more
than 200 MB.

    timeout 900 flock /tmp/ray.lock .venv/bin/python bench/fuzz_api.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import free_port  # noqa: E402
from tests.security.fuzzing import (  # noqa: E402
    Tally,
    fuzz,
    health,
    ingress_rss,
    start_apps,
    stop_apps,
)

MB = 1024 * 1024
#: growth of an ingress replica over the run that counts as a leak
MAX_RSS_GROWTH = 200 * MB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=55,
                        help="generated requests per operation, pinned path and mode")
    args = parser.parse_args()

    import ray
    from ray import serve

    ray.init(address="local", num_cpus=8, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    server = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            targets = start_apps(Path(tmp))
            before = {t.name: ingress_rss(t.name) for t in targets}
            tally = Tally()
            started = time.monotonic()
            for target in targets:
                fuzz(server, target, args.examples, tally)
            elapsed = time.monotonic() - started
            healthy = {t.name: health(server, t) for t in targets}
            after = {t.name: ingress_rss(t.name) for t in targets}
            stop_apps(targets)
    finally:
        serve.shutdown()
        ray.shutdown()

    print(f"requests sent: {tally.requests} in {elapsed:.0f} s "
          f"({tally.requests / elapsed:.0f}/s): {tally.generated} generated, "
          f"{tally.requests - tally.generated} of them sent again without the key")
    print("status codes: " + ", ".join(f"{s}: {n}" for s, n in sorted(tally.statuses.items())))
    print(f"5xx: {tally.server_errors}")
    print(f"failures (5xx, keyless not 401): {len(tally.failures)}")
    for failure in tally.failures[:20]:
        print(f"  {failure}")
    print(f"schema conformance findings: {sum(tally.conformance.values())}")
    for finding, n in tally.conformance.most_common(20):
        print(f"  {n:6d}  {finding}")
    if tally.skipped:
        # mostly negative mode on operations whose parameters are all free-form strings
        print(f"generated nothing: {len(tally.skipped)} (operation, pinned path, mode)")
    print("health after: " + ", ".join(f"{n}: {s}" for n, s in healthy.items()))
    grew = False
    for name in before:
        delta = after[name] - before[name]
        grew |= delta > MAX_RSS_GROWTH
        print(f"ingress RSS {name}: before {before[name] / MB:.0f} MB, after "
              f"{after[name] / MB:.0f} MB, delta {delta / MB:+.0f} MB")
    ok = not tally.failures and all(s == 200 for s in healthy.values()) and not grew
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
