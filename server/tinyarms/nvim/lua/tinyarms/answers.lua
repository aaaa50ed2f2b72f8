-- What the user says about a chat answer, into the server's decision trace (the router learns
-- from it: `tinyarms router fit --from-log`):
--   :TinyarmsRate up|down    a thumbs up / down           -> tinyarms.feedback {trace_id, rating}
--   :TinyarmsReroute [ROUTE] "this was a fix" (no ROUTE: vim.ui.select of the config's routes)
--                                                         -> tinyarms.feedback {trace_id, route}
--   :TinyarmsStronger        the same question again on the role's strong tier -> tinyarms.reask
-- Each acts on the answer under the cursor in the chat buffer, else the chat's last answer
-- (in the chat buffer also `+`, `-`, `S`, `R`: chat.lua). What was recorded shows at the end
-- of the answer's decision line and as a notification. Edits send accepted / rejected
-- themselves (edit.lua).
local M = {}

M.sent = {} -- every feedback the server recorded, oldest first (for scripts and tests)

local function tinyarms()
  return require('tinyarms')
end

local function chat()
  return require('tinyarms.chat')
end

local function target()
  local answer = chat().answer_at_cursor()
  if not answer then
    tinyarms().notify('no chat answer to give feedback on yet (:TinyarmsChat first)', vim.log.levels.WARN)
  end
  return answer
end

--- `tinyarms.feedback` with `fields` for the answer whose trace id is `trace_id`; `done(result)` on success.
function M.send(trace_id, fields, done)
  local t = tinyarms()
  local argument = vim.tbl_extend('force', { trace_id = trace_id }, fields)
  return t.exec(0, 'tinyarms.feedback', argument, function(result)
    table.insert(M.sent, vim.tbl_extend('force', argument, { result = result }))
    if done then
      done(result)
    end
  end)
end

--- A thumbs up or down on the answer under the cursor (else the last one).
function M.rate(rating)
  if rating ~= 'up' and rating ~= 'down' then
    tinyarms().notify('usage: :TinyarmsRate up|down', vim.log.levels.ERROR)
    return
  end
  local answer = target()
  if not answer then
    return
  end
  M.send(answer.trace_id, { rating = rating }, function()
    answer.rating = rating
    local note = rating == 'up' and 'good answer (+)' or 'not a good answer (-)'
    chat().record(answer, note)
    tinyarms().notify('recorded: ' .. note)
  end)
end

--- The routes of the effective config (enabled ones), then "none"; `done(items)`.
local function routes(done)
  tinyarms().exec(0, 'tinyarms.showConfig', nil, function(result)
    local config = (type(result) == 'table' and type(result.config) == 'table') and result.config or {}
    local items = {}
    for name, fields in pairs(type(config.routes) == 'table' and config.routes or {}) do
      local enabled = type(fields.enabled) ~= 'table' or fields.enabled.value ~= false
      if enabled then
        local role = type(fields.role) == 'table' and fields.role.value or 'chat'
        table.insert(items, { route = name, role = role })
      end
    end
    table.sort(items, function(a, b)
      return a.route < b.route
    end)
    table.insert(items, { route = 'none', role = 'the fallback role' })
    done(items)
  end)
end

--- "This was a fix": the route the request should have taken (`route`, else picked from a list).
function M.reroute(route)
  local answer = target()
  if not answer then
    return
  end
  local function send(name)
    M.send(answer.trace_id, { route = name }, function()
      answer.corrected = name
      chat().record(answer, 'route should have been ' .. name)
      tinyarms().notify('recorded: the route should have been ' .. name)
    end)
  end
  if route and vim.trim(route) ~= '' then
    send(vim.trim(route))
    return
  end
  routes(function(items)
    vim.ui.select(items, {
      prompt = ('Which route should this have taken? (the router chose %s)'):format(
        tinyarms().is_nil(answer.route) and 'none' or answer.route
      ),
      format_item = function(item)
        local chosen = item.route == (tinyarms().is_nil(answer.route) and 'none' or answer.route)
        return ('%s (%s)%s'):format(item.route, item.role, chosen and ', the router chose this' or '')
      end,
    }, function(item)
      if item then
        send(item.route)
      end
    end)
  end)
end

--- The answer's question again on the role's strong tier; the new answer goes into the chat.
function M.stronger()
  local answer = target()
  if not answer then
    return
  end
  chat().reask(answer)
end

function M.command_rate(opts)
  M.rate(vim.trim(opts.args))
end

function M.command_reroute(opts)
  M.reroute(opts.args)
end

function M.command_stronger()
  M.stronger()
end

return M
