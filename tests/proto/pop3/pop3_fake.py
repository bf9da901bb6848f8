"""A fake POP3 application for driving the pure core in tests.

Users: alice@example.test (the transcript maildrop), empty@example.test (no
mail), and three that refuse with a response code: locked@ ([IN-USE]),
later@ ([SYS/TEMP]) and disabled@ ([SYS/PERM]).  Every password is "secret".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pop3_transcript import MESSAGES, PASSWORD

from mailwarden.proto.pop3 import (
    AuthAccepted,
    Authenticate,
    AuthRejected,
    Closed,
    MaildropEntry,
    MessageContent,
    NeedData,
    Pop3Session,
    RespCode,
    Retrieve,
    StartTls,
    Update,
    UpdateDone,
)

REFUSALS = {
    "locked@example.test": RespCode.IN_USE,
    "later@example.test": RespCode.SYS_TEMP,
    "disabled@example.test": RespCode.SYS_PERM,
}
MAILDROPS: dict[str, tuple[bytes, ...]] = {
    "alice@example.test": MESSAGES,
    "empty@example.test": (),
}


@dataclass
class FakeApp:
    """Answers the core's events from the fixed maildrops above."""

    messages: tuple[bytes, ...] = ()
    expunged: list[tuple[int, ...]] = field(default_factory=list)
    events: list[object] = field(default_factory=list)
    tls_pending: bool = False

    def finish_tls(self, session: Pop3Session) -> None:
        """Complete a pending STLS handshake, as the shell would."""
        if self.tls_pending:
            self.tls_pending = False
            session.tls_started()

    def answer(self, session: Pop3Session, event: object) -> None:
        self.events.append(event)
        match event:
            case Authenticate(username=user, password=password):
                if user in REFUSALS and password == PASSWORD:
                    session.send(AuthRejected(REFUSALS[user]))
                elif user in MAILDROPS and password == PASSWORD:
                    self.messages = MAILDROPS[user]
                    entries = [
                        MaildropEntry(f"1.{n}", len(m)) for n, m in enumerate(self.messages, 1)
                    ]
                    session.send(AuthAccepted(entries))
                else:
                    session.send(AuthRejected())
            case Retrieve(number=number):
                session.send(MessageContent(self.messages[number - 1]))
            case Update(deleted=deleted):
                self.expunged.append(deleted)
                session.send(UpdateDone())
            case StartTls():
                # The handshake happens after everything the client sent in
                # this step: the runner calls finish_tls() then.
                self.tls_pending = True
            case _:
                raise AssertionError(f"unexpected event {event!r}")

    def drive(self, session: Pop3Session) -> bytes:
        """Handle events until the core needs data or closes; return its output."""
        while True:
            event = session.next_event()
            if isinstance(event, NeedData | Closed):
                return session.data_to_send()
            self.answer(session, event)
