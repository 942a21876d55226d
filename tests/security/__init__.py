"""The hostile-tenant suite: each test is an attack that worked before issue 14 and must fail now."""
