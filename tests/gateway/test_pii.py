"""PII redaction in whole and streamed output."""

from serving.gateway.pii import StreamRedactor, luhn_valid, redact


def test_emails_phones_and_luhn_valid_cards_are_redacted():
    text = "mail bob.smith@corp.io, call +1 415-555-0134, card 4111 1111 1111 1111"
    assert redact(text) == "mail [REDACTED_EMAIL], call [REDACTED_PHONE], card [REDACTED_CARD]"


def test_numbers_that_fail_luhn_are_left_alone():
    assert not luhn_valid("4111 1111 1111 1112")
    assert redact("order 4111 1111 1111 1112 shipped") == "order 4111 1111 1111 1112 shipped"


def test_pii_split_across_stream_tokens_is_still_redacted():
    redactor = StreamRedactor()
    pieces = ["Write to ", "ali", "ce@exa", "mple.com", " or 4111 ", "1111 1111", " 1111", " today."]
    shown = "".join(redactor.feed(p) for p in pieces) + redactor.flush()
    assert shown == "Write to [REDACTED_EMAIL] or [REDACTED_CARD] today."


def test_clean_text_streams_through_unchanged():
    redactor = StreamRedactor()
    text = "The quick brown fox jumps over the lazy dog. " * 3
    shown = "".join(redactor.feed(c) for c in text) + redactor.flush()
    assert shown == text
