"""proto/smtp"""
