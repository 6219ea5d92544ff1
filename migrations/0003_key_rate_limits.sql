-- A key's rate limit in requests per second (NULL: none), set with `keys create --rate-limit`.
ALTER TABLE api_keys ADD COLUMN rate_limit INTEGER;
