-- wrk script: every request from another client (X-Forwarded-For, through
-- a stack that trusts 127.0.0.1) with another query string.
local n = 0
request = function()
  n = n + 1
  local xff = "10." .. (math.floor(n / 65536) % 256) .. "." ..
    (math.floor(n / 256) % 256) .. "." .. (n % 256)
  return wrk.format("GET", "/?q=" .. n, { ["X-Forwarded-For"] = xff })
end
