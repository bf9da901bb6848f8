"""proto/imap"""
