-- wrk: 100 events per request (views, cart adds, page views) over 10,000 visitors.
local n = 0
local types = { "product_view", "product_view", "page_view", "cart_add" }
request = function()
    local parts = {}
    for i = 1, 100 do
        n = n + 1
        parts[i] = string.format(
            '{"type":"%s","ecid":"bench-%d","items":[{"id":"SKU-%d","name":"Item %d","price":19.9,"category":"Bench"}]}',
            types[(n % 4) + 1], n % 10000, n % 500, n % 500)
    end
    local body = '{"events":[' .. table.concat(parts, ",") .. ']}'
    return wrk.format("POST", "/v1/events", { ["Content-Type"] = "application/json" }, body)
end
