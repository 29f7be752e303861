"""The envelope protocol of channel routes: envelopes, codecs, errors (docs/protocol.md)."""
