CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  email TEXT NOT NULL UNIQUE,
  nickname TEXT,
  email_verified INTEGER NOT NULL DEFAULT 0,
  password TEXT NOT NULL
);
