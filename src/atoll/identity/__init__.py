"""Atoll as a client of identity providers (OpenID Connect): what the web and API faces use to
sign people in through their organization's provider. Accounts made from it are domain/sso_accounts.py."""
