#!/usr/bin/python3
"""A real SMTP server for Rapport's alert tests (Debian's python3-aiosmtpd).

Every message it accepts is written to DIR/<n>.eml (atomically: written to a dot file, then
renamed), with the envelope recipients prepended as an X-Envelope-To header. It prints
"ready" once it listens, and runs until it is killed (the tests kill it to make an outage).

  server.py --port P --dir DIR [--cert C --key K] [--user U --password P]

With --cert/--key it offers STARTTLS and requires it before MAIL; with --user/--password it
requires AUTH (PLAIN or LOGIN) with those credentials.
"""

import argparse
import itertools
import os
import signal
import ssl
import logging
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Keep:
    def __init__(self, directory):
        self.directory = directory
        self.numbers = itertools.count(len(os.listdir(directory)) + 1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.numbers)
        tmp = os.path.join(self.directory, f".{n}.eml")
        with open(tmp, "wb") as out:
            out.write(b"X-Envelope-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n")
            out.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(self.directory, f"{n}.eml"))
        return "250 Message accepted for delivery"


# aiosmtpd 1.4 logs a warning about its own deprecated attribute on every login.
logging.getLogger("mail.log").setLevel(logging.ERROR)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()

    options = {}
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        options.update(tls_context=context, require_starttls=True)
    if args.user:
        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == args.user
                and auth_data.password.decode() == args.password
            )
            return AuthResult(success=ok)

        options.update(authenticator=authenticate, auth_required=True,
                       auth_require_tls=bool(args.cert))
    controller = Controller(Keep(args.dir), hostname="127.0.0.1", port=args.port, **options)
    controller.start()
    print("ready", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (controller.stop(), sys.exit(0)))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
