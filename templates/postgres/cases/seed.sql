-- alice's password is "correct horse battery staple", bob's is "hunter22" (bcrypt, cost 10).
INSERT INTO users (id, email, nickname, email_verified, password) VALUES
  (1, 'alice@example.com', 'alice', true, '$2b$10$Ic0hPakJP1HPP4yfsMCne.ZmtxgRHE2OGJOKOYgEkRtc9xrW2kyG2'),
  (2, 'bob@example.com', 'bob', false, '$2b$10$WdMOAepSlNEEEr4Tmq33bOigoMjwyLtCdgdxabIp069tBwio8zUCi');
SELECT setval('users_id_seq', 2);
