-- :TinyarmsAgent GOAL: one `tinyarms.agent` run. Its steps (the $/progress reports under
-- the run's workDoneToken) stream into the buffer tinyarms://agent; at the end it lists
-- the changed files with their diffs, the cost and why it stopped. :TinyarmsAgentCancel
-- stops a run (`tinyarms.agent.cancel`); :TinyarmsAgentUndo (`tinyarms.agent.undo`)
-- restores every file the last run changed, byte for byte, and deletes the files it created.
--
-- The agent writes through workspace/applyEdit (Neovim's own handler applies it to the
-- buffers). Its next step reads the file from disk, so while a run or an undo is in
-- progress a buffer it changed is written at once, unless it had unsaved changes of the
-- user's before; afterwards :checktime reloads what the server restored on disk.
local M = {}

M.active = 0 -- runs or undos in progress
M.run_id = nil -- the running run
M.last = nil -- { run, goal, report }
M.steps = {}
M.buf = nil

local function tinyarms()
  return require('tinyarms')
end

local function buffer()
  if not (M.buf and vim.api.nvim_buf_is_valid(M.buf)) then
    M.buf = tinyarms().scratch_buffer('agent', 'markdown')
  end
  return M.buf
end

local function append(lines)
  tinyarms().write_tail(buffer(), -1, lines)
end

local function open()
  local buf = buffer()
  if vim.fn.bufwinid(buf) == -1 then
    local from = vim.api.nvim_get_current_win()
    vim.cmd('botright split')
    vim.api.nvim_win_set_buf(0, buf)
    vim.api.nvim_win_set_height(0, math.max(8, math.floor(vim.o.lines * 0.3)))
    vim.api.nvim_set_current_win(from)
  end
  return buf
end

local function one_line(text)
  return (tostring(text):gsub('\n', ' '))
end

--- Run `argument` = { goal, uri?, range? }.
function M.run(argument)
  local t = tinyarms()
  if M.run_id then
    t.notify('an agent run is in progress (:TinyarmsAgentCancel stops it)', vim.log.levels.WARN)
    return
  end
  local bufnr = vim.api.nvim_get_current_buf()
  local client = t.client(bufnr)
  if not client then
    return
  end
  local run = t.new_id('agent')
  local token = run .. '-progress'
  argument = vim.tbl_extend('force', argument, { run = run })
  if not argument.uri and client.attached_buffers[bufnr] then
    argument.uri = vim.uri_from_bufnr(bufnr)
  end
  local buf = open()
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, { '# tinyarms agent: ' .. argument.goal, '', 'run ' .. run, '' })
  vim.bo[buf].modifiable = false
  M.steps = {}
  M.run_id = run
  M.active = M.active + 1
  local group = vim.api.nvim_create_augroup('tinyarms_agent_progress', { clear = true })
  vim.api.nvim_create_autocmd('LspProgress', {
    group = group,
    callback = function(ev)
      local params = ev.data and ev.data.params
      if not params or params.token ~= token or type(params.value) ~= 'table' then
        return
      end
      local message = params.value.message or params.value.title
      if message and message ~= '' then
        table.insert(M.steps, { kind = params.value.kind, message = message })
        append({ '- ' .. one_line(message) })
      end
    end,
  })
  local started = vim.uv.hrtime()
  local function finished()
    M.active = M.active - 1
    M.run_id = nil
    pcall(vim.api.nvim_del_augroup_by_id, group)
    vim.cmd('silent! checktime')
  end
  local ok = t.exec(bufnr, 'tinyarms.agent', argument, function(result)
    finished()
    local elapsed = (vim.uv.hrtime() - started) / 1e6
    local report = (not t.is_nil(result) and result.report) or {}
    M.last = { run = (not t.is_nil(result) and result.run) or run, goal = argument.goal, report = report, undone = false }
    local files = t.is_nil(report.files) and {} or report.files
    local lines = {
      '',
      ('stopped: %s (%d steps, %.1f s%s%s)'):format(
        t.is_nil(report.stopped) and 'done' or one_line(report.stopped),
        t.is_nil(report.steps) and #M.steps or #report.steps,
        elapsed / 1000,
        t.is_nil(report.tokens) and '' or (', ' .. report.tokens .. ' tokens'),
        t.is_nil(report.cost_usd) and '' or (', $%.5f'):format(report.cost_usd)
      ),
    }
    for _, file in ipairs(files) do
      vim.list_extend(lines, { '', ('## %s%s'):format(file.path, file.created and ' (created)' or ''), '```diff' })
      vim.list_extend(lines, vim.split((file.diff or ''):gsub('\n$', ''), '\n', { plain = true }))
      table.insert(lines, '```')
    end
    if #files > 0 then
      vim.list_extend(lines, { '', ':TinyarmsAgentUndo restores these files.' })
    end
    append(lines)
    t.answered({ route = 'agent', role = 'agent', tier = M.tier(report) }, elapsed, report.cost_usd)
    t.notify(('agent: %s; %d file(s) changed'):format(t.is_nil(report.stopped) and 'done' or one_line(report.stopped), #files))
  end, function(message)
    finished()
    append({ '', '**the agent failed:** ' .. message })
  end, { work_done_token = token })
  if not ok then
    finished()
    append({ '(tinyarms.agent is not available: is the server up to date?)' })
  end
end

function M.tier(report)
  local steps = type(report.steps) == 'table' and report.steps or {}
  local last = steps[#steps]
  if type(last) == 'table' then
    return last.tier or (type(last.decision) == 'table' and last.decision.tier) or 'agent'
  end
  return 'agent'
end

function M.command(opts)
  if vim.trim(opts.args) == '' then
    vim.ui.input({ prompt = 'tinyarms agent goal: ' }, function(input)
      if input and vim.trim(input) ~= '' then
        M.run({ goal = input })
      end
    end)
    return
  end
  M.run({ goal = opts.args })
end

function M.cancel()
  local t = tinyarms()
  if not M.run_id then
    t.notify('no agent run is in progress')
    return
  end
  t.exec(0, 'tinyarms.agent.cancel', { run = M.run_id }, function(result)
    append({ '- cancel requested: ' .. vim.inspect(result and result.cancelled) })
  end)
end

function M.undo()
  local t = tinyarms()
  local last = M.last
  if not last or last.undone then
    t.notify('no agent run to undo', vim.log.levels.WARN)
    return
  end
  M.active = M.active + 1
  t.exec(0, 'tinyarms.agent.undo', { run = last.run }, function(result)
    M.active = M.active - 1
    last.undone = true
    M.undo_result = result
    vim.cmd('silent! checktime')
    local function count(v)
      return type(v) == 'table' and #v or (tonumber(v) or 0)
    end
    local restored, deleted = count(result and result.restored), count(result and result.deleted)
    append({ '', ('undone: %d restored, %d deleted'):format(restored, deleted) })
    t.notify(('agent run undone: %d restored, %d deleted'):format(restored, deleted))
  end, function()
    M.active = M.active - 1
  end)
end

--- Called after workspace/applyEdit: during a run (or its undo) write what it changed.
--- `modified_before`: buffers that had unsaved changes before the edit.
function M.edit_applied(edit, modified_before)
  if M.active == 0 or type(edit) ~= 'table' then
    return
  end
  local uris = {}
  for uri in pairs(edit.changes or {}) do
    uris[uri] = true
  end
  for _, change in ipairs(edit.documentChanges or {}) do
    local uri = change.textDocument and change.textDocument.uri or change.uri
    if uri then
      uris[uri] = true
    end
  end
  for uri in pairs(uris) do
    local bufnr = vim.uri_to_bufnr(uri)
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.bo[bufnr].modified and not modified_before[bufnr] then
      vim.api.nvim_buf_call(bufnr, function()
        vim.cmd('silent noautocmd write')
      end)
    end
  end
end

return M
