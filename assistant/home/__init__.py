"""The home side: devices, how to address them, and turning an Intent into commands and a reply.

It knows nothing about audio."""
