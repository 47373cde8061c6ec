from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from confide.core import crypto


def test_ids_are_random_and_128_bits() -> None:
    ids = {crypto.new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(crypto.b64d(i)) == 16 for i in ids)


def test_data_key_round_trip_and_binding_to_associated_data() -> None:
    master = os.urandom(32)
    wrapper = crypto.KeyWrapper(master)
    wrapped, key = wrapper.new_wrapped_key("subject-1")
    blob = key.encrypt("Ana Lúcia 日本", "visitors.name:subject-1")
    assert b"Ana" not in blob
    assert wrapper.unwrap(wrapped, "subject-1").decrypt(blob, "visitors.name:subject-1") == "Ana Lúcia 日本"
    with pytest.raises(InvalidTag):  # a ciphertext moved to another column or row does not decrypt
        key.decrypt(blob, "visitors.email:subject-1")
    with pytest.raises(InvalidTag):  # a wrapped key copied to another subject does not unwrap
        wrapper.unwrap(wrapped, "subject-2")
    with pytest.raises(InvalidTag):  # another master key cannot unwrap
        crypto.KeyWrapper(os.urandom(32)).unwrap(wrapped, "subject-1")


def test_same_plaintext_encrypts_differently() -> None:
    _, key = crypto.KeyWrapper(os.urandom(32)).new_wrapped_key("s")
    assert key.encrypt("hello", "a") != key.encrypt("hello", "a")


def test_blind_index_is_keyed_per_workspace_and_normalised() -> None:
    bidx = crypto.BlindIndex(os.urandom(32))
    assert bidx.email("w1", "Ana@Example.COM ") == bidx.email("w1", "ana@example.com")
    assert bidx.email("w1", "ana@example.com") != bidx.email("w2", "ana@example.com")
    assert crypto.BlindIndex(os.urandom(32)).email("w1", "ana@example.com") != bidx.email("w1", "ana@example.com")


def test_words_normalise_case_and_punctuation() -> None:
    assert crypto.words("Hello, WORLD! hello… Ünïcode x") == ["hello", "world", "ünïcode"]


def test_words_split_on_everything_but_letters_and_digits() -> None:
    # underscores, apostrophes and zero-width spaces split; NFKC folds ligatures and full-width digits
    text = "snake_case don't ﬁne １２３ a\u200bb 日本語"
    assert crypto.words(text) == ["snake", "case", "don", "fine", "123", "日本語"]
    assert crypto.words("x" * 70 + " y") == ["x" * 64]
    assert len(crypto.words(" ".join(f"w{i}" for i in range(300)))) == 200


def test_blind_index_terms_are_hmac_sha256_of_kind_and_value() -> None:
    """The stored index format: HMAC-SHA256(workspace key, kind NUL value), hex, 128 bits; the
    workspace key is HMAC-SHA256(HKDF(master, "confide/blind-index/v1"), workspace id)."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    master = os.urandom(32)
    root = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"confide/blind-index/v1").derive(master)
    key = hmac.new(root, b"w1", hashlib.sha256).digest()

    def expected(kind: str, value: str) -> str:
        return hmac.new(key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()[:32]

    bidx = crypto.BlindIndex(master)
    assert bidx.text_terms("w1", "msg", "Refund, REFUND a parcel") == [expected("msg", "refund"),
                                                                      expected("msg", "parcel")]
    assert bidx.term("w1", "name", "ünïcode") == expected("name", "ünïcode")
    assert bidx.email("w1", " Ana@Example.com") == expected("email", "ana@example.com")


def test_signer_rejects_forged_expired_and_malformed_tokens() -> None:
    signer = crypto.Signer(os.urandom(32), "visitor-token")
    token = signer.sign({"v": "visitor", "exp": 2000})
    assert signer.verify(token, 1000) == {"v": "visitor", "exp": 2000}
    assert signer.verify(token, 2001) is None
    body, mac = token.split(".")
    forged_body = crypto.b64e(b'{"exp":9999999999,"v":"other"}')
    assert signer.verify(f"{forged_body}.{mac}", 1000) is None
    assert signer.verify(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], 1000) is None
    assert crypto.Signer(os.urandom(32), "visitor-token").verify(token, 1000) is None
    assert crypto.Signer(b"x" * 32, "other-purpose").verify(crypto.Signer(b"x" * 32, "visitor-token").sign(
        {"exp": 2000}), 1000) is None
    for junk in ("", "abc", "a.b.c", "x" * 5000, f"{body}.", "."):
        assert signer.verify(junk, 1000) is None


def test_master_key_is_created_once_with_owner_only_permissions(tmp_path: Path) -> None:
    first = crypto.load_or_create_master_key(None, tmp_path)
    assert crypto.load_or_create_master_key(None, tmp_path) == first
    mode = stat.S_IMODE((tmp_path / "master.key").stat().st_mode)
    assert mode == 0o600
    configured = crypto.generate_key()
    assert crypto.load_or_create_master_key(configured, tmp_path) == crypto.b64d(configured)
    with pytest.raises(ValueError, match="32 bytes"):
        crypto.load_or_create_master_key("c2hvcnQ", tmp_path)


def test_passwords_hash_and_verify() -> None:
    passwords = crypto.Passwords(time_cost=1, memory_kib=8)
    hashed = passwords.hash("correct horse")
    assert "correct horse" not in hashed
    assert passwords.verify(hashed, "correct horse")
    assert not passwords.verify(hashed, "wrong horse")
    assert not passwords.verify("not-a-hash", "correct horse")


def test_message_terms_are_the_same_from_the_word_cache_and_after_it_is_forgotten() -> None:
    bidx = crypto.BlindIndex(os.urandom(32))
    bidx.MESSAGE_WORDS = 5  # forget often
    texts = ["refund my parcel please", "my parcel", "Refund the ORDER today", "a b c", "new words only here"]
    for _ in range(3):
        for text in texts:
            expected = [bidx.term("w1", "msg", w) for w in crypto.words(text)]
            assert bidx.text_terms("w1", "msg", text) == expected
            assert bidx.text_terms("w2", "msg", text) != expected or not expected
    assert bidx._remembered <= 5


def test_ordered_ids_are_unique_random_and_sort_by_their_creation_millisecond() -> None:
    from datetime import timedelta

    from confide.core import clock

    first = crypto.new_ordered_ids(500)
    clock.advance(timedelta(milliseconds=3))
    later = crypto.new_ordered_id()
    ids = [*first, later]
    assert len(set(ids)) == 501
    assert all(len(i) == 32 and i[:10] == first[0][:10] for i in first)
    assert later[:10] > first[0][:10]  # the time prefix sorts as the clock does
    assert all(c in "0123456789ABCDEFGHIJKLMNOPQRSTUV" for i in ids for c in i[:10])
    # 22 base64url characters after the prefix: 132 random bits, more than new_id()'s 128
    b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert all(c in b64url for i in ids for c in i[10:])
    assert len({i[10:] for i in ids}) == 501


def test_sealed_tokens_open_only_for_their_context_and_before_they_expire() -> None:
    sealer = crypto.Sealer(b"s" * 32, "filters")
    token = sealer.seal({"text": "zebrafish"}, context="op-1", ttl_s=60, now_epoch=1000.0)
    assert crypto.b64d(token).find(b"zebrafish") == -1  # encrypted, not just encoded
    assert sealer.open(token, context="op-1", now_epoch=1059.0) == {"text": "zebrafish"}
    assert sealer.open(token, context="op-2", now_epoch=1000.0) is None  # another operator's
    assert sealer.open(token, context="op-1", now_epoch=1061.0) is None  # expired
    assert crypto.Sealer(b"s" * 32, "other").open(token, context="op-1", now_epoch=1000.0) is None
    assert crypto.Sealer(b"t" * 32, "filters").open(token, context="op-1", now_epoch=1000.0) is None
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    for bad in (forged, "", "!!", "x" * 5000, None, 7):
        assert sealer.open(bad, context="op-1", now_epoch=1000.0) is None
