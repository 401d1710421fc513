-- wrk script: the traffic that costs a worker most memory. Half the
-- requests look up a random public address (/api/ip/{address}, IPv4 and
-- IPv6 alike: the database and every country's zone), the rest are /,
-- /ip and /time?tz= in one of the zones given as arguments. With the
-- argument `many`, every request also comes from another client
-- (X-Forwarded-For, through a stack that trusts 127.0.0.1).
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

local many, zones, n = false, {}, 0
function init(args)
  math.randomseed(os.time() * 100 + id)
  for _, a in ipairs(args) do
    if a == "many" then many = true else zones[#zones + 1] = a end
  end
  if #zones == 0 then zones = { "UTC" } end
  -- Each thread its own clients: 10.64.0.0, 10.128.0.0, ...
  n = id * 4194304
end

local function ipv4()
  local a = math.random(1, 223)
  if a == 10 or a == 127 then a = a + 1 end
  return a .. "." .. math.random(0, 255) .. "." .. math.random(0, 255) ..
    "." .. math.random(1, 254)
end

-- Inside the regional registries' first blocks (2400::/12 APNIC, 2600::/12
-- ARIN, 2800::/12 LACNIC, 2a00::/12 RIPE, 2c00::/12 AFRINIC) or 2001::/16.
local blocks = { 0x2400, 0x2600, 0x2800, 0x2a00, 0x2c00 }
local function ipv6()
  local first = math.random(0, 5) == 0 and 0x2001 or
    blocks[math.random(1, #blocks)] + math.random(0, 15)
  return string.format("%x:%x:%x:%x::%x", first, math.random(0, 65535),
    math.random(0, 65535), math.random(0, 65535), math.random(1, 65535))
end

local function path()
  local r = math.random(1, 8)
  if r <= 2 then return "/api/ip/" .. ipv4() end
  if r <= 4 then return "/api/ip/" .. ipv6() end
  if r == 5 then return "/" end
  if r == 6 then return "/ip" end
  return "/time?tz=" .. zones[math.random(1, #zones)]
end

request = function()
  if not many then return wrk.format("GET", path()) end
  n = n + 1
  local xff = "10." .. (math.floor(n / 65536) % 256) .. "." ..
    (math.floor(n / 256) % 256) .. "." .. (n % 256)
  return wrk.format("GET", path(), { ["X-Forwarded-For"] = xff })
end
