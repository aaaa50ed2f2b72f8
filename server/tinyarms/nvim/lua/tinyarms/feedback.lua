-- Acceptance feedback from Neovim's completion menu (`tinyarms.autocomplete.feedback`):
-- - shown: a tinyarms item is in the menu (CompleteChanged), once per item;
-- - accepted: CompleteDone with reason "accept" (<C-y>; Neovim itself then runs the item's
--   own feedback command, so this sends it only for items without one), or an item that was
--   inserted and kept (the menu closed by typing on or by <Esc>, reason "discard");
-- - dismissed: the menu closed without keeping a tinyarms item (<C-e>, or nothing selected);
-- - partial: the accept-word / accept-line keys insert only the next word or line of the
--   selected (else the first) tinyarms item: vim.g.tinyarms_accept_word_key (default
--   '<M-Right>') and vim.g.tinyarms_accept_line_key (default '<M-C-Right>'); `false` maps
--   nothing. `accepted_length` counts the characters accepted from that item so far.
local M = {}

M.FEEDBACK = 'tinyarms.autocomplete.feedback'
M.sent = {} -- the last 1000 events sent, for tests and :messages-free debugging
local shown = {} -- id -> true
local partial = {} -- id -> characters accepted so far
local final = {} -- id -> 'accepted' | 'dismissed': sent once
local menu_items = {} -- the menu's tinyarms items at CompleteDonePre
local skip_done = false -- the next CompleteDone closed the menu for a partial accept

local function tinyarms()
  return require('tinyarms')
end

--- The LSP completion item behind a complete-item, if tinyarms sent it.
local function lsp_item(item)
  local data = type(item) == 'table' and type(item.user_data) == 'table' and item.user_data.nvim
  local lsp = type(data) == 'table' and data.lsp
  if type(lsp) ~= 'table' or type(lsp.completion_item) ~= 'table' then
    return nil
  end
  local client = vim.lsp.get_client_by_id(lsp.client_id)
  if not client or client.name ~= 'tinyarms' then
    return nil
  end
  return lsp.completion_item, client
end

--- The feedback id of an LSP completion item: its feedback command's, else data.id.
local function item_id(item)
  local command = item.command
  if type(command) == 'table' and command.command == M.FEEDBACK then
    local arg = (command.arguments or {})[1]
    if type(arg) == 'table' and type(arg.id) == 'string' then
      return arg.id, true
    end
  end
  if type(item.data) == 'table' and type(item.data.id) == 'string' then
    return item.data.id, false
  end
  return nil
end

local function send(bufnr, id, event, accepted_length)
  if final[id] then
    return
  end
  if event == 'accepted' or event == 'dismissed' then
    final[id] = event
  end
  local argument = { id = id, event = event, accepted_length = accepted_length }
  table.insert(M.sent, argument)
  if #M.sent > 1000 then
    table.remove(M.sent, 1) -- one per suggestion shown: a long session must not grow it without end
  end
  local client = vim.lsp.get_clients({ name = 'tinyarms', bufnr = bufnr })[1]
  local provider = client and client.server_capabilities.executeCommandProvider
  if not client or type(provider) ~= 'table' or not vim.list_contains(provider.commands or {}, M.FEEDBACK) then
    return -- an older server: feedback is optional, never an error while typing
  end
  client:request('workspace/executeCommand', { command = M.FEEDBACK, arguments = { argument } }, function() end, bufnr)
end

local function tinyarms_items()
  local found = {}
  for _, item in ipairs(vim.fn.complete_info({ 'items' }).items or {}) do
    local lsp = lsp_item(item)
    local id = lsp and item_id(lsp)
    if id then
      table.insert(found, { id = id, item = item, lsp = lsp })
    end
  end
  return found
end

local function on_changed(bufnr)
  for _, entry in ipairs(tinyarms_items()) do
    if not shown[entry.id] then
      shown[entry.id] = true
      send(bufnr, entry.id, 'shown')
    end
  end
end

local function on_done(bufnr)
  if skip_done then
    skip_done = false
    return
  end
  local reason = vim.v.event.reason
  local completed = vim.v.completed_item
  local lsp = lsp_item(completed)
  local kept_id, has_command
  if lsp then
    kept_id, has_command = item_id(lsp)
  end
  if kept_id and reason == 'accept' then
    if not has_command then -- else Neovim runs the item's own command: not twice
      send(bufnr, kept_id, 'accepted')
    end
  elseif kept_id and reason ~= 'cancel' then
    send(bufnr, kept_id, 'accepted') -- inserted and kept; Neovim runs no command for it
  end
  for _, entry in ipairs(menu_items) do
    if entry.id ~= kept_id or reason == 'cancel' then
      if not partial[entry.id] then
        send(bufnr, entry.id, 'dismissed')
      end
    end
  end
  menu_items = {}
end

-- The text of the item not typed yet: its newText minus what is before the cursor since the
-- start of its range (or of the keyword under the cursor).
local function remaining(lsp, client, bufnr)
  local text = (type(lsp.textEdit) == 'table' and lsp.textEdit.newText) or lsp.insertText or lsp.label or ''
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  local line = vim.api.nvim_buf_get_lines(bufnr, row - 1, row, false)[1] or ''
  local before = line:sub(1, col)
  local start
  local range = type(lsp.textEdit) == 'table' and (lsp.textEdit.range or lsp.textEdit.insert)
  if range and range.start.line == row - 1 then
    start = vim.str_byteindex(line, client.offset_encoding or 'utf-16', range.start.character, false)
  else
    start = vim.fn.match(before, [[\k*$]])
  end
  local typed = before:sub(start + 1)
  if text:sub(1, #typed) == typed then
    return text:sub(#typed + 1)
  end
  return text
end

local function next_word(text)
  return text:match('^%s*[%w_]+') or text:match('^%s*[^%w_%s]+') or text:match('^%s+') or ''
end

local function next_line(text)
  local line = text:match('^[^\n]*')
  if line == '' and text:sub(1, 1) == '\n' then
    return '\n' .. (text:sub(2):match('^[^\n]*') or '')
  end
  return line
end

-- After <C-e> restored the typed text: insert the part and report it.
function M._insert_part(kind)
  local pending = M._pending_part
  M._pending_part = nil
  if not pending then
    return
  end
  local bufnr = vim.api.nvim_get_current_buf()
  local client = vim.lsp.get_client_by_id(pending.client_id)
  if not client then
    return
  end
  local rest = remaining(pending.lsp, client, bufnr)
  local part = kind == 'line' and next_line(rest) or next_word(rest)
  if part == '' then
    return
  end
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  local lines = vim.split(part, '\n', { plain = true })
  vim.api.nvim_buf_set_text(bufnr, row - 1, col, row - 1, col, lines)
  local last_row = row + #lines - 1
  local last_col = #lines == 1 and col + #part or #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { last_row, last_col })
  partial[pending.id] = (partial[pending.id] or 0) + vim.fn.strchars(part)
  if part == rest then
    send(bufnr, pending.id, 'accepted')
  else
    send(bufnr, pending.id, 'partial', partial[pending.id])
  end
end

-- The expr mapping: with a tinyarms item in the menu, close the menu restoring the typed
-- text (<C-e>) and insert the next word or line of that item; else the key itself.
local function part_mapping(kind, key)
  return function()
    local info = vim.fn.complete_info({ 'items', 'selected', 'mode' })
    M.last_mapping = { kind = kind, pum = vim.fn.pumvisible(), mode = info.mode, items = #(info.items or {}) }
    if info.mode == '' or #(info.items or {}) == 0 then
      return key
    end
    local chosen = info.items[(info.selected or -1) + 1]
    local candidates = chosen and { chosen } or info.items
    for _, item in ipairs(candidates) do
      local lsp, client = lsp_item(item)
      local id = lsp and item_id(lsp)
      if id and client then
        M._pending_part = { id = id, lsp = lsp, client_id = client.id }
        for _, entry in ipairs(tinyarms_items()) do -- the others in the menu were not taken
          if entry.id ~= id and not partial[entry.id] then
            send(vim.api.nvim_get_current_buf(), entry.id, 'dismissed')
          end
        end
        skip_done = true
        return ('<C-e><Cmd>lua require("tinyarms.feedback")._insert_part(%q)<CR>'):format(kind)
      end
    end
    return key
  end
end

--- Set up the autocmds and the accept-word / accept-line keys for `bufnr`.
function M.attach(bufnr)
  local group = vim.api.nvim_create_augroup('tinyarms_feedback_' .. bufnr, { clear = true })
  vim.api.nvim_create_autocmd('CompleteChanged', {
    group = group,
    buffer = bufnr,
    callback = function()
      on_changed(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd('CompleteDonePre', {
    group = group,
    buffer = bufnr,
    callback = function()
      menu_items = tinyarms_items()
      on_changed(bufnr) -- what was in the menu was shown (CompleteChanged may not have fired)
    end,
  })
  vim.api.nvim_create_autocmd('CompleteDone', {
    group = group,
    buffer = bufnr,
    callback = function()
      on_done(bufnr)
    end,
  })
  local word_key = vim.g.tinyarms_accept_word_key == nil and '<M-Right>' or vim.g.tinyarms_accept_word_key
  local line_key = vim.g.tinyarms_accept_line_key == nil and '<M-C-Right>' or vim.g.tinyarms_accept_line_key
  if word_key then
    vim.keymap.set('i', word_key, part_mapping('word', word_key), {
      buffer = bufnr, expr = true, replace_keycodes = true, desc = 'tinyarms: accept the next word of the suggestion',
    })
  end
  if line_key then
    vim.keymap.set('i', line_key, part_mapping('line', line_key), {
      buffer = bufnr, expr = true, replace_keycodes = true, desc = 'tinyarms: accept the next line of the suggestion',
    })
  end
end

return M
