"""proto/pop3"""
