-- :TinyarmsChat: one chat buffer that keeps the conversation. Each :TinyarmsChat TEXT is the
-- next turn of the same `tinyarms.chat` conversation (the server keeps its turns in its state
-- dir); the answer streams into the buffer (`tinyarms/stream`), then the decision line
-- (route, tier, latency, cost) and the context that was sent go under it.
-- In the chat buffer: <CR> asks the next question, q closes the window, and on the answer
-- under the cursor `+` / `-` rate it, `S` asks a stronger tier again, `R` corrects its route
-- (answers.lua; vim.g.tinyarms_chat_keys changes or, with false, drops each key).
-- :TinyarmsChatNew starts a new conversation.
local M = {}

M.conversation = nil -- the server's conversation id
M.turns = 0
M.buf = nil
M.busy = false
M.answers = 0 -- answers received (for scripts and tests)
M.streamed = 0 -- `tinyarms/stream` pieces shown so far
-- Every answer shown, oldest first: { trace_id, route, role, tier, mark, stronger, rating,
-- corrected, recorded }; `mark` is an extmark on its decision line (where "recorded: ..." shows).
M.shown = {}
local source_buf = nil -- the code buffer the last question came from
local ns = vim.api.nvim_create_namespace('tinyarms.chat')

local KEYS = { rate_up = '+', rate_down = '-', stronger = 'S', reroute = 'R' }

local function tinyarms()
  return require('tinyarms')
end

local function buffer()
  if M.buf and vim.api.nvim_buf_is_valid(M.buf) then
    return M.buf
  end
  local buf = tinyarms().scratch_buffer('chat', 'markdown')
  vim.keymap.set('n', '<CR>', function()
    M.prompt()
  end, { buffer = buf, nowait = true, silent = true, desc = 'tinyarms: ask the next question' })
  local configured = vim.g.tinyarms_chat_keys or {}
  local actions = {
    rate_up = { function() require('tinyarms.answers').rate('up') end, 'rate the answer under the cursor up' },
    rate_down = { function() require('tinyarms.answers').rate('down') end, 'rate the answer under the cursor down' },
    stronger = { function() require('tinyarms.answers').stronger() end, 'ask the answer\'s question on a stronger tier' },
    reroute = { function() require('tinyarms.answers').reroute() end, 'correct the route of the answer under the cursor' },
  }
  for name, default in pairs(KEYS) do
    local key = configured[name]
    if key == nil then
      key = default
    end
    if key then
      vim.keymap.set('n', key, actions[name][1], { buffer = buf, nowait = true, silent = true, desc = 'tinyarms: ' .. actions[name][2] })
    end
  end
  M.buf = buf
  return buf
end

--- The chat window: shown in a vertical split on the right unless it is already visible.
function M.open()
  local buf = buffer()
  local win = vim.fn.bufwinid(buf)
  if win == -1 then
    vim.cmd('botright vsplit')
    win = vim.api.nvim_get_current_win()
    vim.api.nvim_win_set_buf(win, buf)
    vim.wo[win].wrap = true
    vim.wo[win].linebreak = true
  end
  return buf, win
end

local function append(buf, lines)
  vim.bo[buf].modifiable = true
  local count = vim.api.nvim_buf_line_count(buf)
  local empty = count == 1 and vim.api.nvim_buf_get_lines(buf, 0, 1, false)[1] == ''
  vim.api.nvim_buf_set_lines(buf, empty and 0 or count, -1, false, lines)
  vim.bo[buf].modifiable = false
  return vim.api.nvim_buf_line_count(buf)
end

-- Replace the lines from `from` (0-based) to the end.
local function replace_tail(buf, from, text)
  tinyarms().write_tail(buf, from, vim.split(text, '\n', { plain = true }))
end

local function context_line(context)
  if type(context) ~= 'table' or #context == 0 then
    return nil
  end
  local parts = {}
  for _, piece in ipairs(context) do
    local name = tinyarms().is_nil(piece.path) and piece.kind or (piece.path .. ' (' .. (piece.kind or '?') .. ')')
    table.insert(parts, name .. (tinyarms().is_nil(piece.tokens) and '' or (' ' .. piece.tokens .. ' tok')))
  end
  return '> context: ' .. table.concat(parts, ', ')
end

-- Stream the answer of `command` (with `argument`, which gets a stream_id) in under `header`
-- (lines appended first); then its text, decision line and context. `on_result(result)` runs
-- before it is shown; returns whether the request went out.
local function answer_into_buffer(code_buf, header, command, argument, on_result)
  local t = tinyarms()
  local buf = M.open()
  append(buf, header)
  local answer_from = vim.api.nvim_buf_line_count(buf) - 1
  replace_tail(buf, answer_from, '(answering...)')
  local stream_id = t.new_id('chat')
  local stop = t.on_stream(stream_id, function(so_far)
    replace_tail(buf, answer_from, so_far)
  end)
  argument.stream_id = stream_id
  local started = vim.uv.hrtime()
  M.busy = true
  local ok = t.exec(code_buf, command, argument, function(result)
    M.busy = false
    M.streamed = M.streamed + stop()
    result = t.is_nil(result) and {} or result
    local elapsed = (vim.uv.hrtime() - started) / 1e6
    local prefix = on_result and on_result(result) or ''
    local answer = t.is_nil(result.text) and '' or result.text
    if answer == '' and type(result.note) == 'string' then
      answer = result.note
    end
    local lines = vim.split(answer, '\n', { plain = true })
    table.insert(lines, '')
    table.insert(lines, '> ' .. prefix .. t.answer_line(result.decision, elapsed, result.cost_usd))
    local decision_row = answer_from + #lines - 1
    local context = context_line(result.context)
    if context then
      table.insert(lines, context)
    end
    for i, action in ipairs(t.is_nil(result.actions) and {} or result.actions) do
      table.insert(lines, ('> action %d: %s (:TinyarmsChatAction %d)'):format(i, action.title, i))
    end
    replace_tail(buf, answer_from, table.concat(lines, '\n'))
    t.answered(result.decision, elapsed, result.cost_usd)
    local trace = not t.is_nil(result.trace) and result.trace or {}
    if type(trace.id) == 'string' then
      local decision = t.is_nil(result.decision) and {} or result.decision
      table.insert(M.shown, {
        trace_id = trace.id,
        route = decision.route,
        role = decision.role,
        tier = decision.tier,
        stronger = command ~= 'tinyarms.chat',
        mark = vim.api.nvim_buf_set_extmark(buf, ns, decision_row, 0, {}),
      })
    end
    M.last = result
    M.answers = M.answers + 1
  end, function(message)
    M.busy = false
    stop()
    replace_tail(buf, answer_from, '**tinyarms could not answer:** ' .. message)
  end)
  if not ok then
    M.busy = false
    stop()
    replace_tail(buf, answer_from, ('(%s is not available: is the server up to date?)'):format(command))
  end
  return ok
end

--- Send `text` as the next turn; `where` = { bufnr, range } of the code it is about.
function M.send(text, where)
  local t = tinyarms()
  if M.busy then
    t.notify('the chat is still answering', vim.log.levels.WARN)
    return
  end
  where = where or {}
  local code_buf = where.bufnr or source_buf or vim.api.nvim_get_current_buf()
  local client = t.client(code_buf)
  if not client then
    return
  end
  M.turns = M.turns + 1
  local header = vim.split(text, '\n', { plain = true })
  table.insert(header, 1, '## You')
  if M.turns > 1 then
    table.insert(header, 1, '') -- a blank line between turns
  end
  vim.list_extend(header, { '', '## tinyarms', '' })
  local argument = { text = text, conversation = M.conversation }
  if client.attached_buffers[code_buf] then
    argument.uri = vim.uri_from_bufnr(code_buf)
    argument.range = where.range
  end
  answer_into_buffer(code_buf, header, 'tinyarms.chat', argument, function(result)
    if not t.is_nil(result.conversation) then
      M.conversation = result.conversation
    end
    M.actions = t.is_nil(result.actions) and {} or result.actions
  end)
end

--- The same question as `answer` (an entry of M.shown) again, on the role's strong tier
--- (`tinyarms.reask`); the new answer goes under the conversation, marked as such.
function M.reask(answer)
  local t = tinyarms()
  if M.busy then
    t.notify('the chat is still answering', vim.log.levels.WARN)
    return false
  end
  local header = { '', '## tinyarms, again on a stronger tier', '' }
  return answer_into_buffer(source_buf or 0, header, 'tinyarms.reask', { trace_id = answer.trace_id }, function(result)
    local tier = t.is_nil(result.decision) and '?' or result.decision.tier
    M.record(answer, ('asked %s again (below)'):format(tier))
    return 'stronger tier: '
  end)
end

--- The answer under the cursor in the chat window (an answer runs from after the decision
--- line of the one before it to its own decision line), else the last one; nil: none yet.
function M.answer_at_cursor()
  if not (M.buf and vim.api.nvim_buf_is_valid(M.buf) and vim.api.nvim_get_current_buf() == M.buf) then
    return M.shown[#M.shown]
  end
  local row = vim.api.nvim_win_get_cursor(0)[1] - 1
  for _, answer in ipairs(M.shown) do
    local pos = vim.api.nvim_buf_get_extmark_by_id(M.buf, ns, answer.mark, {})
    if pos[1] and pos[1] >= row then
      return answer
    end
  end
  return M.shown[#M.shown]
end

--- Show what feedback on `answer` recorded, at the end of its decision line.
function M.record(answer, note)
  answer.recorded = note
  if M.buf and vim.api.nvim_buf_is_valid(M.buf) then
    local pos = vim.api.nvim_buf_get_extmark_by_id(M.buf, ns, answer.mark, {})
    if pos[1] then
      vim.api.nvim_buf_set_extmark(M.buf, ns, pos[1], 0, {
        id = answer.mark,
        virt_text = { { '  recorded: ' .. note, 'Comment' } },
        virt_text_pos = 'eol',
      })
    end
  end
end

--- Ask for the next question with vim.ui.input.
function M.prompt(where)
  vim.ui.input({ prompt = 'tinyarms chat: ' }, function(input)
    if input and vim.trim(input) ~= '' then
      M.send(input, where)
    end
  end)
end

--- :TinyarmsChat [text]; a range sends the selection's range along (the server reads it).
function M.command(opts)
  local t = tinyarms()
  local bufnr = vim.api.nvim_get_current_buf()
  local where = {}
  if bufnr ~= M.buf then
    source_buf = bufnr
    where.bufnr = bufnr
    if opts.range > 0 then
      local client = t.client(bufnr)
      if not client then
        return
      end
      local _, range = t.selection(opts, client)
      where.range = range
    end
  end
  if vim.trim(opts.args) == '' then
    M.open()
    M.prompt(where)
    return
  end
  M.send(opts.args, where)
end

function M.new_conversation()
  M.conversation = nil
  M.turns = 0
  M.actions = {}
  M.shown = {}
  if M.buf and vim.api.nvim_buf_is_valid(M.buf) then
    vim.bo[M.buf].modifiable = true
    vim.api.nvim_buf_set_lines(M.buf, 0, -1, false, {})
    vim.bo[M.buf].modifiable = false
  end
  tinyarms().notify('new conversation')
end

--- :TinyarmsChatAction N: run the Nth action of the last answer (apply as an edit, start the agent).
function M.action(opts)
  local t = tinyarms()
  local action = (M.actions or {})[tonumber(opts.args) or 1]
  if not action then
    t.notify('the last answer has no such action', vim.log.levels.WARN)
    return
  end
  local argument = (action.arguments or {})[1]
  if action.command == 'tinyarms.edit' then
    require('tinyarms.edit').propose(argument)
  elseif action.command == 'tinyarms.agent' then
    require('tinyarms.agent').run(argument)
  else
    t.exec(source_buf or 0, action.command, argument, function(result)
      t.notify(action.title .. ': done')
      M.last_action = result
    end)
  end
end

return M
