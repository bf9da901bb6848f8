"""Sans-I/O protocol cores: bytes in, events and bytes out.

Nothing under this package may import asyncio, socket, time, the store or any
other part of Mailwarden except :mod:`mailwarden.mail`; a test walks the imports
to keep it that way.
"""
