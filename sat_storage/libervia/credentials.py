"""Credentials Libervia 0.9 stored for a profile, decrypted when it connects.

As Libervia's ``sat/memory/crypto.py``, ``memory.py`` and ``params.py`` do:

- a random *personal key* (base64 text) per profile, stored encrypted under the
  *profile password* as the private value ``crypto``/``personal_key``;
- the profile password itself only as a hash in the param ``General``/``Password``
  (PBKDF2-HMAC-SHA1, 1000 iterations, 16-byte salt and key, base64; empty when the
  profile has no password);
- the XMPP password (``Connection``/``Password``) encrypted under the personal key.

Encryption is AES in CFB8 mode with a random 16-byte IV, base64 of ``IV +
ciphertext``; the key is the UTF-8 text cut to 32 bytes or padded like the data
(PKCS#7-style to 16 bytes). The stored values are never changed here.
"""

from __future__ import annotations

import base64
import hmac
from hashlib import pbkdf2_hmac
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:
    from cryptography.hazmat.decrepit.ciphers.modes import CFB8
except ImportError:  # cryptography < 43
    from cryptography.hazmat.primitives.ciphers.modes import CFB8  # type: ignore[attr-defined,no-redef]

from sat_storage.libervia.errors import ProfilePasswordError

__all__ = [
    "CRYPTO_NAMESPACE",
    "PERSONAL_KEY",
    "PROFILE_PASSWORD",
    "decrypt",
    "needs_profile_password",
    "verify_profile_password",
    "xmpp_password",
]

CRYPTO_NAMESPACE = "crypto"
PERSONAL_KEY = "personal_key"
PROFILE_PASSWORD = ("General", "Password")
BLOCK = 16
MAX_KEY = 32
SALT = 16


def _pad(data: bytes) -> bytes:
    n = BLOCK - len(data) % BLOCK
    return data + bytes([n]) * n


def _key(key: str) -> bytes:
    raw = key.encode()
    return raw[:MAX_KEY] if len(raw) >= MAX_KEY else _pad(raw)


def decrypt(key: str, ciphertext: str) -> str:
    """Libervia's ``BlockCipher.decrypt``; ``ValueError`` when ``key`` is not the one."""
    if ciphertext == "":
        return ""
    raw = base64.b64decode(ciphertext)
    decryptor = Cipher(algorithms.AES(_key(key)), CFB8(raw[:BLOCK])).decryptor()
    try:
        text = (decryptor.update(raw[BLOCK:]) + decryptor.finalize()).decode()
    except UnicodeDecodeError:
        raise ValueError("the key does not decrypt this value") from None
    if not text or not 1 <= ord(text[-1]) <= BLOCK:
        raise ValueError("the key does not decrypt this value")
    return text[: -ord(text[-1])]


def verify_profile_password(attempt: str, password_hash: str) -> bool:
    """Libervia's ``PasswordHasher.verify``: does ``attempt`` match the stored hash?"""
    if password_hash == "":
        return attempt == ""
    salt = base64.b64decode(password_hash)[:SALT]
    key = pbkdf2_hmac("sha1", attempt.encode(), salt, 1000, dklen=16)
    return hmac.compare_digest(base64.b64encode(salt + key).decode(), password_hash)


async def _personal_key_and_hash(storage: Any, profile: str) -> tuple[str | None, str]:
    privates = await storage.get_privates(CRYPTO_NAMESPACE, [PERSONAL_KEY], profile=profile)
    password_hash = await storage.get_ind_param(*PROFILE_PASSWORD, profile)
    return privates.get(PERSONAL_KEY), password_hash or ""


async def needs_profile_password(storage: Any, profile: str) -> bool:
    """True for a profile adopted from Libervia whose credentials need its password."""
    encrypted_key, password_hash = await _personal_key_and_hash(storage, profile)
    return encrypted_key is not None and password_hash != ""


async def xmpp_password(
    storage: Any, profile: str, stored: str, profile_password: str | None = None
) -> str:
    """The XMPP password to connect ``profile`` with, from its stored ``Connection/Password``.

    A profile without Libervia's personal key stores it as it is. Otherwise it is
    decrypted: with the empty profile password when the profile has none, else with
    ``profile_password``; :class:`ProfilePasswordError` when it is missing or wrong.
    """
    encrypted_key, password_hash = await _personal_key_and_hash(storage, profile)
    if encrypted_key is None:
        return stored
    if profile_password is None:
        if password_hash:
            raise ProfilePasswordError(
                f"profile {profile!r} (adopted from Libervia) has a profile password, needed "
                "to decrypt its XMPP password: give it (sat-storage run --profile NAME asks)"
            )
        profile_password = ""
    if not verify_profile_password(profile_password, password_hash):
        raise ProfilePasswordError(f"wrong profile password for profile {profile!r}")
    try:
        return decrypt(decrypt(profile_password, encrypted_key), stored)
    except ValueError as e:
        raise ProfilePasswordError(
            f"cannot decrypt the XMPP password of profile {profile!r}: {e}"
        ) from None
