-- wrk script: every request through a trusted proxy that names a client
-- and another trusted proxy (bench/against_old.ts).
wrk.headers["X-Forwarded-For"] = "203.0.113.7, 10.0.0.2"
