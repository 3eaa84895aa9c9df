"""Writes events/*.json: Function URL request events for every route and case, signed with the
test secrets at the fixed fixture time. `--check` fails if the committed files differ."""

import json
import pathlib
import sys

import senders

FIXTURE_TIME = 1771455600  # 2026-02-18T23:00:00Z; tests fix their clock near this instant
EVENTS = pathlib.Path(__file__).resolve().parent.parent / "events"


def rendered():
    files = {}
    for i, delivery in enumerate(senders.deliveries(FIXTURE_TIME)):
        received = FIXTURE_TIME + 1 + (5 if delivery["name"].endswith("duplicate") else 0)
        event = senders.function_url_event(delivery, received, f"00000000-0000-4000-8000-{i:012d}")
        files[f"{delivery['name']}.json"] = json.dumps(event, indent=2) + "\n"
    return files


def main():
    files = rendered()
    if "--check" in sys.argv:
        stale = [n for n, text in files.items() if not (EVENTS / n).exists() or (EVENTS / n).read_text() != text]
        if stale:
            sys.exit(f"events/ is out of date ({', '.join(stale)}); run: python3 scripts/make_fixtures.py")
        print(f"events/: {len(files)} fixtures up to date")
        return
    for name, text in files.items():
        (EVENTS / name).write_text(text)
    print(f"wrote {len(files)} fixtures to {EVENTS}")


if __name__ == "__main__":
    main()
