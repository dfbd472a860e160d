-- wrk (4.x, no -R): each connection waits CONNS*1000/RATE ms between requests, so the whole run
-- offers about RATE req/s (a little less: the response time adds to each connection's cycle).
local rate = tonumber(os.getenv("RATE") or "1000")
local conns = tonumber(os.getenv("CONNS") or "10")
function delay()
  return conns * 1000 / rate
end
