-- alice's password is "correct horse battery staple", bob's is "hunter22" (bcrypt, cost 10).
INSERT INTO users (id, email, nickname, email_verified, password) VALUES
  (1, 'alice@example.com', 'alice', 1, '$2b$10$Ic0hPakJP1HPP4yfsMCne.ZmtxgRHE2OGJOKOYgEkRtc9xrW2kyG2'),
  (2, 'bob@example.com', 'bob', 0, '$2b$10$WdMOAepSlNEEEr4Tmq33bOigoMjwyLtCdgdxabIp069tBwio8zUCi');
