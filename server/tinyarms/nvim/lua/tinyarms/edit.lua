-- :'<,'>TinyarmsEdit INSTRUCTION: `tinyarms.edit` with preview = true returns the proposed
-- change (checked by the server: it parses, a minimal diff, the version matched); it shows
-- as a unified diff in a split. In that split `a` accepts and `r` (or `q`) rejects
-- (vim.g.tinyarms_edit_keys = { accept = 'a', reject = 'r' } changes them). Accept applies
-- the WorkspaceEdit with Neovim's own vim.lsp.util.apply_workspace_edit, the function
-- Neovim's workspace/applyEdit handler uses, in one go: one `u` in the file undoes it.
-- A file that changed since the proposal is not touched (run the edit again).
-- Accept and reject send their outcome to the proposal's trace (`tinyarms.feedback {trace_id,
-- outcome}`): the server cannot see which the user chose.
local M = {}

M.pending = nil -- { edit, bufnr, changedtick, client_id, instruction, diff_buf, source_win, trace_id }
M.outcomes = {} -- { trace_id, outcome } the server recorded, oldest first (for scripts and tests)

local function tinyarms()
  return require('tinyarms')
end

local function keys()
  local configured = vim.g.tinyarms_edit_keys or {}
  return { accept = configured.accept or 'a', reject = configured.reject or 'r' }
end

--- The version Neovim sent for `bufnr` in its last didChange (what the server checks).
function M.version(bufnr)
  return vim.lsp.util.buf_versions[bufnr]
end

-- The user's verdict on `pending`, into its trace (nothing to name without a trace id).
local function send_outcome(pending, outcome)
  if type(pending.trace_id) ~= 'string' then
    return
  end
  tinyarms().exec(pending.bufnr, 'tinyarms.feedback', { trace_id = pending.trace_id, outcome = outcome }, function()
    table.insert(M.outcomes, { trace_id = pending.trace_id, outcome = outcome })
  end)
end

local function close_diff(pending)
  if pending.diff_buf and vim.api.nvim_buf_is_valid(pending.diff_buf) then
    vim.api.nvim_buf_delete(pending.diff_buf, { force = true })
  end
  if pending.source_win and vim.api.nvim_win_is_valid(pending.source_win) then
    vim.api.nvim_set_current_win(pending.source_win)
  end
end

local function show_diff(pending, diff, decision_line)
  local k = keys()
  local buf = vim.api.nvim_create_buf(false, true)
  vim.bo[buf].bufhidden = 'wipe'
  pcall(vim.api.nvim_buf_set_name, buf, 'tinyarms://edit-proposal')
  local lines = {
    ('# tinyarms: %s'):format(pending.instruction),
    ('# %s accepts, %s rejects; %s'):format(k.accept, k.reject, decision_line),
  }
  vim.list_extend(lines, vim.split((diff or ''):gsub('\n$', ''), '\n', { plain = true }))
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].filetype = 'diff'
  vim.cmd('belowright split')
  vim.api.nvim_win_set_buf(0, buf)
  local opts = { buffer = buf, nowait = true, silent = true }
  vim.keymap.set('n', k.accept, M.accept, vim.tbl_extend('force', opts, { desc = 'tinyarms: accept the edit' }))
  vim.keymap.set('n', k.reject, M.reject, vim.tbl_extend('force', opts, { desc = 'tinyarms: reject the edit' }))
  vim.keymap.set('n', 'q', M.reject, vim.tbl_extend('force', opts, { desc = 'tinyarms: reject the edit' }))
  return buf
end

--- Ask for a proposal: `argument` = { uri, range, instruction, version? } (a chat action's shape).
function M.propose(argument)
  local t = tinyarms()
  local bufnr = vim.uri_to_bufnr(argument.uri)
  vim.fn.bufload(bufnr)
  local client = t.client(bufnr)
  if not client then
    return
  end
  if M.pending then
    M.reject({ superseded = true }) -- replaced by the new proposal: no verdict on it
  end
  argument = vim.tbl_extend('force', argument, { preview = true })
  argument.version = argument.version or M.version(bufnr)
  local changedtick = vim.b[bufnr].changedtick
  local source_win = vim.fn.bufwinid(bufnr)
  local started = vim.uv.hrtime()
  t.notify(('editing: %s ...'):format(argument.instruction))
  t.exec(bufnr, 'tinyarms.edit', argument, function(result)
    local elapsed = (vim.uv.hrtime() - started) / 1e6
    result = t.is_nil(result) and {} or result
    M.last = result
    t.answered(result.decision, elapsed, t.is_nil(result.decision) and nil or result.decision.cost_usd)
    if not t.is_nil(result.refused) or t.is_nil(result.edit) then
      local why = t.is_nil(result.refused) and 'the server proposed no change' or result.refused
      t.notify('the edit was not offered: ' .. why, vim.log.levels.WARN)
      return
    end
    local pending = {
      edit = result.edit,
      bufnr = bufnr,
      changedtick = changedtick,
      client_id = client.id,
      instruction = argument.instruction,
      trace_id = not t.is_nil(result.trace) and result.trace.id or nil,
      source_win = source_win ~= -1 and source_win or vim.api.nvim_get_current_win(),
    }
    M.pending = pending
    pending.diff_buf = show_diff(pending, result.diff, t.answer_line(result.decision, elapsed))
  end)
end

--- Accept the proposal waiting in the diff split.
function M.accept()
  local t = tinyarms()
  local pending = M.pending
  if not pending then
    t.notify('no proposed edit is waiting', vim.log.levels.WARN)
    return
  end
  M.pending = nil
  close_diff(pending)
  if not vim.api.nvim_buf_is_valid(pending.bufnr) or vim.b[pending.bufnr].changedtick ~= pending.changedtick then
    t.notify('the file changed since the proposal; nothing was applied (run the edit again)', vim.log.levels.WARN)
    M.result = 'stale'
    return
  end
  local client = vim.lsp.get_client_by_id(pending.client_id)
  local ok, err = pcall(vim.lsp.util.apply_workspace_edit, pending.edit, client and client.offset_encoding or 'utf-16')
  if not ok then
    t.notify('the edit could not be applied: ' .. tostring(err), vim.log.levels.ERROR)
    M.result = 'failed'
    return
  end
  M.result = 'applied'
  send_outcome(pending, 'accepted')
  t.notify(('applied: %s (u undoes it)'):format(pending.instruction))
end

--- Drop the proposal; nothing changes. `opts.superseded`: a new proposal replaces it (no verdict sent).
function M.reject(opts)
  local pending = M.pending
  if not pending then
    return
  end
  M.pending = nil
  close_diff(pending)
  M.result = 'rejected'
  if not (type(opts) == 'table' and opts.superseded) then
    send_outcome(pending, 'rejected')
  end
end

--- :'<,'>TinyarmsEdit INSTRUCTION (no range: the current line).
function M.command(opts)
  local t = tinyarms()
  local client = t.client(0)
  if not client then
    return
  end
  local bufnr = vim.api.nvim_get_current_buf()
  local _, range = t.selection(opts, client)
  local function go(instruction)
    M.propose({ uri = vim.uri_from_bufnr(bufnr), range = range, instruction = instruction, version = M.version(bufnr) })
  end
  if vim.trim(opts.args) ~= '' then
    go(opts.args)
    return
  end
  vim.ui.input({ prompt = 'tinyarms edit: ' }, function(input)
    if input and vim.trim(input) ~= '' then
      go(input)
    end
  end)
end

return M
