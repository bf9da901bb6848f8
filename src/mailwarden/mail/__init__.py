"""Value types shared by the protocol cores, the store and the services."""

from mailwarden.mail.address import Address, AddressError, normalize_domain

__all__ = ["Address", "AddressError", "normalize_domain"]
