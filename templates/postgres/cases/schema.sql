CREATE TABLE users (
  id SERIAL PRIMARY KEY,
  email TEXT NOT NULL UNIQUE,
  nickname TEXT,
  email_verified BOOLEAN NOT NULL DEFAULT false,
  password TEXT NOT NULL
);
