"""Roles, the vault, the key file and masking."""

import os
import stat

import pytest

from crm.core.errors import CrmError, PermissionDenied
from crm.core.security import (
    User,
    Vault,
    load_vault,
    mask_id_number,
    mask_phone,
    new_key,
    parse_user,
)


def test_masks_keep_only_what_the_issue_allows():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_id_number("110105199001011234") == "110105********1234"
    assert mask_phone(None) is None


def test_parse_user_accepts_name_role_and_chinese_roles():
    assert parse_user("王芳:manager") == User("王芳", "manager")
    assert parse_user("李雷:经理") == User("李雷", "manager")
    assert parse_user("analyst").role == "analyst"
    assert parse_user(None).role == "agent"
    with pytest.raises(CrmError, match="不认识的角色"):
        parse_user("x:boss")


def test_permission_refusal_names_the_roles_that_may():
    with pytest.raises(PermissionDenied, match="经理"):
        User("a", "analyst").require("household.write", "修改客户资料")
    User("m", "manager").require("personal.full", "查看完整个人信息")


def test_vault_round_trip_is_randomised_and_hash_is_stable():
    vault = Vault(os.urandom(32))
    first, second = vault.encrypt("13812345678"), vault.encrypt("13812345678")
    assert first != second and "13812345678" not in first
    assert vault.decrypt(first) == "13812345678"
    assert vault.lookup_hash("13812345678") == vault.lookup_hash("13812345678")
    assert Vault(os.urandom(32)).lookup_hash("13812345678") != vault.lookup_hash("13812345678")


def test_wrong_key_cannot_decrypt():
    token = Vault(os.urandom(32)).encrypt("110105199001011234")
    with pytest.raises(CrmError, match="密钥"):
        Vault(os.urandom(32)).decrypt(token)


def test_key_file_is_created_private_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("CRM_SECRET_KEY")
    key_file = tmp_path / "k" / "secret.key"
    with pytest.raises(CrmError, match="crm init"):
        load_vault(key_file)
    vault = load_vault(key_file, create=True)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_vault(key_file).lookup_hash("x") == vault.lookup_hash("x")
    key_file.chmod(0o644)
    with pytest.raises(CrmError, match="chmod 600"):
        load_vault(key_file)


def test_env_key_must_be_32_bytes(monkeypatch, tmp_path):
    monkeypatch.setenv("CRM_SECRET_KEY", "short")
    with pytest.raises(CrmError, match="32"):
        load_vault(tmp_path / "unused")
    monkeypatch.setenv("CRM_SECRET_KEY", new_key())
    assert load_vault(tmp_path / "unused").encrypt("a")
