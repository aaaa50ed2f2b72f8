-- Where the cursor settles, for autocomplete's prefill (`tinyarms/cursorMoved`,
-- server/tinyarms/protocol.py). LSP has no cursor notification, and the first completion at
-- a new place costs a cold prompt (~0.7 s on 2 cores) that only the user's pause after moving
-- there can hide: the server evaluates it ahead when told where the cursor is.
--
-- CursorMoved / CursorMovedI, debounced: sent once the cursor has rested
-- vim.g.tinyarms_cursor_settle_ms (default 100; a held `j` sends nothing until it stops; the
-- server waits a little more and skips places it has evaluated already). A move made by an
-- edit (b:changedtick changed) is left out: the server sees the edit in didChange.
-- vim.g.tinyarms_cursor_prefill = false sends nothing.
local M = {}

M.sent = {} -- the last 1000 notifications sent ({ uri, line, character }), for tests
local timers = {} -- bufnr -> uv timer
local ticks = {} -- bufnr -> b:changedtick at the last move

local function send(client, bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) or vim.api.nvim_get_current_buf() ~= bufnr or client:is_stopped() then
    return
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  client:notify('tinyarms/cursorMoved', params)
  table.insert(M.sent, { uri = params.textDocument.uri, line = params.position.line, character = params.position.character })
  if #M.sent > 1000 then
    table.remove(M.sent, 1) -- a long session must not grow it without end
  end
end

local function moved(client, bufnr)
  if vim.g.tinyarms_cursor_prefill == false then
    return
  end
  local tick = vim.b[bufnr].changedtick
  local timer = timers[bufnr]
  if ticks[bufnr] ~= tick then
    ticks[bufnr] = tick -- typing moved it
    if timer then
      timer:stop()
    end
    return
  end
  if not timer then
    timer = assert(vim.uv.new_timer())
    timers[bufnr] = timer
  end
  timer:stop()
  timer:start(vim.g.tinyarms_cursor_settle_ms or 100, 0, vim.schedule_wrap(function()
    send(client, bufnr)
  end))
end

--- Report cursor moves in `bufnr` to the tinyarms `client` (idempotent per buffer).
function M.attach(client, bufnr)
  if vim.g.tinyarms_cursor_prefill == false then
    return
  end
  local group = vim.api.nvim_create_augroup('tinyarms_cursor_' .. bufnr, { clear = true })
  ticks[bufnr] = vim.b[bufnr].changedtick
  vim.api.nvim_create_autocmd({ 'CursorMoved', 'CursorMovedI' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      moved(client, bufnr)
    end,
  })
  vim.api.nvim_create_autocmd({ 'BufWipeout', 'LspDetach' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      if timers[bufnr] then
        timers[bufnr]:close()
        timers[bufnr] = nil
      end
      ticks[bufnr] = nil
      pcall(vim.api.nvim_del_augroup_by_id, group)
    end,
  })
end

return M
