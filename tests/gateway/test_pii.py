"""PII redaction in whole and streamed output."""

from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_an_email_longer_than_any_fixed_hold_back_is_redacted_whole():
    email = "a.very.long.local.part.for.testing.holdback@mail.subdomain.example-company.com"
    redactor = StreamRedactor()
    shown = "".join(redactor.feed(c) for c in f"write to {email} now") + redactor.flush()
    assert shown == "write to [REDACTED_EMAIL] now"


def test_prose_is_released_as_it_arrives():
    redactor = StreamRedactor()
    assert redactor.feed("The answer is ") == "The answer is "
    assert redactor.feed("Paris") == ""          # a word could still become an email
    assert redactor.feed(", and") == "Paris, "    # "and" waits for the next token


# one alphabet that makes PII likely: letters, digits, the separators the patterns use
PIIISH = st.text(alphabet="ab1234567890 .-@()+x\n", max_size=80)
SNIPPETS = st.sampled_from(["alice@example.com", "(415) 555-0134", "+1 415-555-0134",
                            "4111 1111 1111 1111", "4111-1111-1111-1111", " ", "x", "1", "@b.co"])


@given(st.lists(st.one_of(PIIISH, SNIPPETS), max_size=12), st.data())
@settings(max_examples=400, deadline=None)
def test_a_stream_is_redacted_exactly_as_its_whole_text_however_it_is_split(parts, data):
    text = "".join(parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=10)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    redactor = StreamRedactor()
    shown = "".join(redactor.feed(p) for p in pieces) + redactor.flush()
    assert shown == redact(text)
