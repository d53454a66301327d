"""Reads the messages a mail sink stored (N.eml + N.json, tests/blackbox/
mail_sink.py) and prints them as JSON for the end-to-end test: envelope,
headers, the decoded HTML and text parts, and whether the DKIM signature
verifies against the public key record given (an independent verifier:
Debian's python3-dkim; the record comes from a file, not DNS).

usage: /usr/bin/python3 mailread.py SINK_DIR DKIM_RECORD_FILE DKIM_NAME
"""
import email
import email.policy
import json
import os
import sys

import dkim


def main():
    sink, record_file, dkim_name = sys.argv[1:4]
    with open(record_file, "rb") as f:
        record = f.read().strip()

    def dnsfunc(name, timeout=5):
        return record if name == dkim_name.encode() else None

    out = []
    names = sorted((f for f in os.listdir(sink) if f.endswith(".eml")),
                   key=lambda f: int(f.split(".")[0]))
    for name in names:
        with open(os.path.join(sink, name), "rb") as f:
            raw = f.read()
        with open(os.path.join(sink, name[:-4] + ".json")) as f:
            env = json.load(f)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        html = msg.get_body(("html",))
        text = msg.get_body(("plain",))
        out.append({
            "file": name,
            "rcpt": env["rcpt_tos"],
            "headers": {k: str(v) for k, v in msg.items()},
            "html": html.get_content() if html else None,
            "text": text.get_content() if text else None,
            "dkim": bool(dkim.DKIM(raw).verify(dnsfunc=dnsfunc)),
        })
    json.dump(out, sys.stdout)


main()
