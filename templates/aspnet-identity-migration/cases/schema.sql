-- The columns of ASP.NET Core Identity's AspNetUsers table that the scripts read.
CREATE TABLE AspNetUsers (
  Id TEXT PRIMARY KEY,
  UserName TEXT,
  NormalizedUserName TEXT,
  Email TEXT,
  NormalizedEmail TEXT UNIQUE,
  EmailConfirmed INTEGER NOT NULL DEFAULT 0,
  PasswordHash TEXT
);
