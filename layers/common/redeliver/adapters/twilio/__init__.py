"""Twilio: the Conversations gateway, the credentials it is called with, webhook signatures."""
