-- erin: Identity v3 hash (PBKDF2-HMAC-SHA256, 10000 iterations) of "Pa55w.rd-v3"
-- frank: Identity v2 hash (PBKDF2-HMAC-SHA1, 1000 iterations) of "Pa55w.rd-v2"
-- grace: already migrated, bcrypt of "hunter22"
-- heidi: a hash in no known format
INSERT INTO AspNetUsers VALUES
  ('5b4c2b1e-0001-4e8a-9f3b-000000000001', 'erin', 'ERIN', 'erin@example.com', 'ERIN@EXAMPLE.COM', 1,
   'AQAAAAEAACcQAAAAEAABAgMEBQYHCAkKCwwNDg8r69607nB0vP/xGoSrumex9qaaAxahyqlK2nhx5W1r4w=='),
  ('5b4c2b1e-0002-4e8a-9f3b-000000000002', 'frank', 'FRANK', 'frank@example.com', 'FRANK@EXAMPLE.COM', 0,
   'ABAREhMUFRYXGBkaGxwdHh+YPA703PPVgh5i4rVu2q7VMQ8MHdrumAjCOf2G73LUPA=='),
  ('5b4c2b1e-0003-4e8a-9f3b-000000000003', 'grace', 'GRACE', 'grace@example.com', 'GRACE@EXAMPLE.COM', 1,
   '$2b$10$WdMOAepSlNEEEr4Tmq33bOigoMjwyLtCdgdxabIp069tBwio8zUCi'),
  ('5b4c2b1e-0004-4e8a-9f3b-000000000004', 'heidi', 'HEIDI', 'heidi@example.com', 'HEIDI@EXAMPLE.COM', 1,
   'bm90IGEgaGFzaA==');
