-- wrk: one product_view per request, over 10,000 visitors and 500 items.
local n = 0
request = function()
    n = n + 1
    local body = string.format(
        '{"type":"product_view","ecid":"bench-%d","items":[{"id":"SKU-%d","name":"Item %d","price":19.9,"category":"Bench"}]}',
        n % 10000, n % 500, n % 500)
    return wrk.format("POST", "/v1/events", { ["Content-Type"] = "application/json" }, body)
end
