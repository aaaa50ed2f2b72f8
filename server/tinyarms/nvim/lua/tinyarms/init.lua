-- tinyarms in Neovim: user commands, completion and the server's own notifications.
--
-- lsp/tinyarms.lua calls register(); on every LspAttach of the `tinyarms` client this
-- module creates the :Tinyarms* commands and turns completion on for the buffer. Commands go
-- out as workspace/executeCommand requests (M.exec); the names are tinyarms' protocol
-- (server/tinyarms/protocol.py). Ask/Explain answers show in a scratch float (`q` closes it);
-- the chat buffer, edits with a diff and the agent are in chat.lua, edit.lua and agent.lua,
-- completion acceptance feedback in feedback.lua, cursor moves for autocomplete's prefill
-- in cursor.lua, ratings / route corrections / "try a stronger tier" on chat answers in
-- answers.lua.
local M = {}

M.commands = {
  show_config = 'tinyarms.showConfig',
  route = 'tinyarms.route',
  ask = 'tinyarms.ask',
  status = 'tinyarms.status',
  toggle_autocomplete = 'tinyarms.toggleAutocomplete',
}

-- Filetypes the server attaches to by default (an AI helper is useful in any code).
M.filetypes = {
  'bash', 'c', 'clojure', 'cmake', 'cpp', 'cs', 'css', 'cuda', 'dart', 'dockerfile', 'elixir',
  'erlang', 'fish', 'go', 'graphql', 'haskell', 'html', 'java', 'javascript', 'javascriptreact',
  'json', 'jsonc', 'julia', 'kotlin', 'lua', 'make', 'markdown', 'nix', 'ocaml', 'perl', 'php',
  'proto', 'python', 'r', 'ruby', 'rust', 'scala', 'scss', 'sh', 'sql', 'svelte', 'swift',
  'terraform', 'toml', 'typescript', 'typescriptreact', 'vim', 'vue', 'yaml', 'zig', 'zsh',
}

-- The latest result of every command, and the latest `tinyarms/status` event of each kind
-- (completion, decision): for statuslines, scripts and tests.
M.last = {}
M.last_status = {}

local streams = {} -- stream_id -> { buf, text, note }
local scratch_bufs = {} -- title -> buffer
local stream_counter = 0

local function notify(message, level)
  vim.notify('tinyarms: ' .. message, level or vim.log.levels.INFO)
end

local function is_nil(value)
  return value == nil or value == vim.NIL
end

--- The tinyarms client for `bufnr`: the one attached to it, else any running one (the
--- commands also work from an answer float or another buffer); nil with an error message.
function M.client(bufnr)
  local client = vim.lsp.get_clients({ name = 'tinyarms', bufnr = bufnr or 0 })[1]
    or vim.lsp.get_clients({ name = 'tinyarms' })[1]
  if not client then
    notify('no tinyarms server is running (open a file it attaches to)', vim.log.levels.ERROR)
  end
  return client
end

-- A scratch buffer per title, shown in a float; returns the buffer.
local function show(title, lines, filetype)
  local buf = scratch_bufs[title]
  if not (buf and vim.api.nvim_buf_is_valid(buf)) then
    buf = vim.api.nvim_create_buf(false, true)
    vim.bo[buf].bufhidden = 'hide'
    pcall(vim.api.nvim_buf_set_name, buf, 'tinyarms://' .. title)
    vim.keymap.set('n', 'q', '<cmd>close<cr>', { buffer = buf, nowait = true, silent = true })
    scratch_bufs[title] = buf
  end
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  if filetype and vim.bo[buf].filetype ~= filetype then -- setting it again reruns ftplugins
    vim.bo[buf].filetype = filetype
  end
  if vim.fn.bufwinid(buf) == -1 then
    local width = math.max(40, math.min(100, math.floor(vim.o.columns * 0.8)))
    local height = math.max(5, math.min(#lines + 1, math.floor(vim.o.lines * 0.7)))
    vim.api.nvim_open_win(buf, true, {
      relative = 'editor',
      width = width,
      height = height,
      row = math.floor((vim.o.lines - height) / 2),
      col = math.floor((vim.o.columns - width) / 2),
      style = 'minimal',
      border = 'rounded',
      title = ' tinyarms: ' .. title .. ' ',
    })
    vim.wo[vim.fn.bufwinid(buf)].wrap = true
  end
  return buf
end
M.show = show

--- A new scratch buffer `tinyarms://NAME` (read-only, hidden when its window closes, `q`
--- closes the window) for the chat and the agent.
function M.scratch_buffer(name, filetype)
  local buf = vim.api.nvim_create_buf(false, true)
  vim.bo[buf].bufhidden = 'hide'
  vim.bo[buf].filetype = filetype
  vim.bo[buf].modifiable = false
  pcall(vim.api.nvim_buf_set_name, buf, 'tinyarms://' .. name)
  vim.keymap.set('n', 'q', '<cmd>close<cr>', { buffer = buf, nowait = true, silent = true, desc = 'tinyarms: close' })
  return buf
end

--- Replace the lines of read-only `buf` from `from` (0-based; -1: append) to its end with
--- `lines`, and keep its window (if shown) at the last line: how answers stream in.
function M.write_tail(buf, from, lines)
  if not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, from, -1, false, lines)
  vim.bo[buf].modifiable = false
  local win = vim.fn.bufwinid(buf)
  if win ~= -1 then
    vim.api.nvim_win_set_cursor(win, { vim.api.nvim_buf_line_count(buf), 0 })
  end
end

local function set_buf_text(buf, text)
  if not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, vim.split(text, '\n', { plain = true }))
  vim.bo[buf].modifiable = false
end

--- Run a tinyarms command on the buffer's server; `on_result(result)` gets the answer,
--- `on_error(message)` (optional) a failure, which is also reported with vim.notify.
--- `opts.work_done_token`: sent as the request's workDoneToken (LSP) and in the argument
--- (tinyarms' commands read it there); the $/progress it names arrive as LspProgress.
function M.exec(bufnr, command, argument, on_result, on_error, opts)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local client = M.client(bufnr)
  if not client then
    return false
  end
  local provider = client.server_capabilities.executeCommandProvider
  local offered = type(provider) == 'table' and provider.commands or {}
  if not vim.list_contains(offered, command) then
    notify(('the server does not offer %s (is tinyarms up to date?)'):format(command), vim.log.levels.ERROR)
    return false
  end
  local token = opts and opts.work_done_token
  if token and argument ~= nil then
    argument.workDoneToken = token
  end
  local params = { command = command, arguments = argument ~= nil and { argument } or {}, workDoneToken = token }
  client:request('workspace/executeCommand', params, function(err, result)
    if err then
      M.last[command] = { error = err.message or tostring(err) }
      local message = ('%s failed: %s'):format(command, err.message or vim.inspect(err))
      notify(message, vim.log.levels.ERROR)
      if on_error then
        on_error(message)
      end
      return
    end
    M.last[command] = result
    if on_result then
      on_result(result)
    end
  end) -- no bufnr: Neovim first sends every buffer's pending didChange, so the server never
  -- works on a stale copy (an agent's undo right after its edit, an edit of a file just typed in)
  return true
end

--- Route `tinyarms/stream` pieces of `stream_id` to `on_text(text_so_far)` (until the
--- command's answer arrives; call the returned function to stop).
function M.on_stream(stream_id, on_text)
  streams[stream_id] = { text = '', note = nil, chunks = 0, on_text = on_text }
  return function()
    local stream = streams[stream_id]
    streams[stream_id] = nil
    return stream and stream.chunks or 0
  end
end

--- A new id for a stream or a run: unique in this Neovim.
function M.new_id(kind)
  stream_counter = stream_counter + 1
  return ('nvim-%s-%d-%d'):format(kind, vim.fn.getpid(), stream_counter)
end

M.notify = notify
M.is_nil = is_nil

-- Formatting ---------------------------------------------------------------------------

local function fmt_number(value, pattern)
  return is_nil(value) and '-' or pattern:format(value)
end

--- One line for a routing decision (Decision.to_dict()).
function M.format_decision(d)
  if is_nil(d) then
    return 'no decision yet'
  end
  local route = is_nil(d.route) and 'none (fallback)' or d.route
  local line = ('route %s -> role %s, tier %s'):format(route, d.role or '?', d.tier or '?')
  if not is_nil(d.stage) then
    line = line .. (' (%s, score %s, margin %s)'):format(d.stage, fmt_number(d.score, '%.2f'), fmt_number(d.margin, '%.2f'))
  end
  if not is_nil(d.elapsed_ms) then
    line = line .. (' in %s ms'):format(fmt_number(d.elapsed_ms, '%.1f'))
  end
  if not is_nil(d.cost_usd) then
    line = line .. (', $%.5f'):format(d.cost_usd)
  end
  if not is_nil(d.reason) and d.reason ~= '' then
    line = line .. ': ' .. d.reason
  end
  return line
end

local function format_completion(c)
  if is_nil(c) then
    return 'none yet'
  end
  return ('tier %s, model %s, %s ms'):format(c.tier or '?', c.model or '?', fmt_number(c.elapsed_ms, '%.0f'))
end

function M.format_status(status)
  if is_nil(status) then
    return { '(the server sent no status)' }
  end
  local lines = { 'roles -> tiers:' }
  for _, line in ipairs(status.summary or {}) do
    table.insert(lines, '  ' .. line)
  end
  table.insert(lines, 'tiers:')
  local names = vim.tbl_keys(status.tiers or {})
  table.sort(names)
  for _, name in ipairs(names) do
    local tier = status.tiers[name]
    table.insert(lines, ('  %-14s %s  %s'):format(name, tier.provider or '?', is_nil(tier.model) and '' or tier.model))
  end
  table.insert(lines, 'last completion: ' .. format_completion(status.last_completion))
  table.insert(lines, 'last decision:   ' .. M.format_decision(status.last_decision))
  return lines
end

function M.format_config(result)
  if is_nil(result) then
    return { '# (the server sent no config)' }
  end
  local lines = vim.split(result.text or '', '\n', { plain = true, trimempty = true })
  if result.using_last_good then
    table.insert(lines, 1, '# a config file has errors: the last good config is in effect')
  end
  for _, p in ipairs(result.problems or {}) do
    local where = is_nil(p.file) and '' or (p.file .. (is_nil(p.line) and '' or (':' .. p.line)) .. ': ')
    table.insert(lines, ('# %s: %s%s'):format(p.severity or 'problem', where, p.message or ''))
  end
  return lines
end

-- The selected text (charwise, linewise or blockwise) when the command was given the
-- visual range, else whole lines line1..line2; and its LSP range.
function M.selection(opts, client)
  local bufnr = vim.api.nvim_get_current_buf()
  local start_mark = vim.api.nvim_buf_get_mark(bufnr, '<')
  local end_mark = vim.api.nvim_buf_get_mark(bufnr, '>')
  local from_visual = opts.range > 0 and start_mark[1] == opts.line1 and end_mark[1] == opts.line2
  local lines, start_pos, end_pos
  if from_visual then
    local mode = vim.fn.visualmode()
    lines = vim.fn.getregion(vim.fn.getpos("'<"), vim.fn.getpos("'>"), { type = mode ~= '' and mode or 'v' })
    if mode == 'V' then
      start_pos = { opts.line1, 0 }
      end_pos = { opts.line2, math.max(#vim.fn.getline(opts.line2) - 1, 0) }
    else
      -- `$` in visual mode puts the end mark past the line: clamp it to the last character.
      local last = math.max(#vim.fn.getline(end_mark[1]) - 1, 0)
      start_pos, end_pos = start_mark, { end_mark[1], math.min(end_mark[2], last) }
    end
  else
    lines = vim.api.nvim_buf_get_lines(bufnr, opts.line1 - 1, opts.line2, false)
    start_pos = { opts.line1, 0 }
    end_pos = { opts.line2, math.max(#(lines[#lines] or '') - 1, 0) }
  end
  local params = vim.lsp.util.make_given_range_params(start_pos, end_pos, bufnr, client.offset_encoding)
  return table.concat(lines, '\n'), params.range
end

-- Commands -----------------------------------------------------------------------------

--- Ask (route, run the role's tiers) and stream the answer into a scratch float.
function M.ask(text, context)
  context = context or {}
  local bufnr = vim.api.nvim_get_current_buf()
  stream_counter = stream_counter + 1
  local stream_id = ('nvim-%d-%d'):format(vim.fn.getpid(), stream_counter)
  local argument = { text = text, stream_id = stream_id }
  local client = vim.lsp.get_clients({ name = 'tinyarms', bufnr = bufnr })[1]
  if client then -- the document goes along only when the server knows it
    argument.uri = vim.uri_from_bufnr(bufnr)
    argument.range = context.range
  end
  local title = context.title or 'answer'
  local buf = show(title, { '(asking...)' }, 'markdown')
  streams[stream_id] = { buf = buf, text = '', note = nil, chunks = 0 }
  local started = M.exec(bufnr, M.commands.ask, argument, function(result)
    -- How many pieces streamed in before the final answer replaced them.
    M.last_stream = { title = title, chunks = streams[stream_id] and streams[stream_id].chunks or 0 }
    streams[stream_id] = nil
    result = is_nil(result) and {} or result
    local text = is_nil(result.text) and '' or result.text
    if text == '' and type(result.note) == 'string' then -- the server says why there is no answer
      text = result.note
    end
    local lines = vim.split(text, '\n', { plain = true })
    if not is_nil(result.decision) then
      table.insert(lines, '')
      table.insert(lines, '---')
      table.insert(lines, M.format_decision(result.decision))
    end
    show(title, lines, 'markdown')
  end, function(message)
    streams[stream_id] = nil
    set_buf_text(buf, message)
  end)
  if not started then
    streams[stream_id] = nil
    set_buf_text(buf, '(tinyarms.ask is not available)')
  end
end

local function cmd_ask(opts)
  local client = M.client(0)
  if not client then
    return
  end
  local text = opts.args
  local range
  if opts.range > 0 then
    local code
    code, range = M.selection(opts, client)
    text = text .. '\n\n```' .. vim.bo.filetype .. '\n' .. code .. '\n```'
  end
  if vim.trim(text) == '' then
    vim.ui.input({ prompt = 'tinyarms ask: ' }, function(input)
      if input and vim.trim(input) ~= '' then
        M.ask(input, {})
      end
    end)
    return
  end
  M.ask(text, { range = range })
end

local function cmd_explain(opts)
  local client = M.client(0)
  if not client then
    return
  end
  local code, range = M.selection(opts, client)
  local question = opts.args ~= '' and (' ' .. opts.args) or ''
  -- The slash command sends this to the `explain` route without asking the router.
  local text = '/explain' .. question .. '\n\n```' .. vim.bo.filetype .. '\n' .. code .. '\n```'
  M.ask(text, { range = range, title = 'explain' })
end

local function cmd_route(opts)
  if vim.trim(opts.args) == '' then
    notify('usage: :TinyarmsRoute TEXT', vim.log.levels.ERROR)
    return
  end
  M.exec(0, M.commands.route, { text = opts.args }, function(decision)
    notify(M.format_decision(decision))
  end)
end

local function cmd_status()
  M.exec(0, M.commands.status, nil, function(status)
    show('status', M.format_status(status), nil)
  end)
end

local function cmd_config()
  M.exec(0, M.commands.show_config, nil, function(result)
    show('config', M.format_config(result), 'toml')
  end)
end

local function lazy(module, fn)
  return function(opts)
    require(module)[fn](opts)
  end
end

local user_commands = {
  TinyarmsAsk = { cmd_ask, { nargs = '*', range = true, desc = 'tinyarms: ask (routed); a range adds the selection' } },
  TinyarmsExplain = { cmd_explain, { nargs = '*', range = true, desc = 'tinyarms: explain the selection' } },
  TinyarmsRoute = { cmd_route, { nargs = '+', desc = 'tinyarms: where a request would go, and why' } },
  TinyarmsStatus = { cmd_status, { nargs = 0, desc = 'tinyarms: tiers, models, last completion and decision' } },
  TinyarmsConfig = { cmd_config, { nargs = 0, desc = 'tinyarms: the effective config with sources' } },
  TinyarmsChat = { lazy('tinyarms.chat', 'command'), { nargs = '*', range = true, desc = 'tinyarms: the next turn of the chat' } },
  TinyarmsChatNew = { lazy('tinyarms.chat', 'new_conversation'), { nargs = 0, desc = 'tinyarms: start a new chat conversation' } },
  TinyarmsChatAction = { lazy('tinyarms.chat', 'action'), { nargs = '?', desc = "tinyarms: run an action of the chat's last answer" } },
  TinyarmsRate = { lazy('tinyarms.answers', 'command_rate'), { nargs = 1, complete = function() return { 'up', 'down' } end, desc = 'tinyarms: rate the chat answer under the cursor (else the last): up or down' } },
  TinyarmsReroute = { lazy('tinyarms.answers', 'command_reroute'), { nargs = '?', desc = 'tinyarms: the route the chat answer under the cursor should have taken' } },
  TinyarmsStronger = { lazy('tinyarms.answers', 'command_stronger'), { nargs = 0, desc = "tinyarms: ask the chat answer's question again on a stronger tier" } },
  TinyarmsEdit = { lazy('tinyarms.edit', 'command'), { nargs = '*', range = true, desc = 'tinyarms: propose an edit of the range, as a diff' } },
  TinyarmsAgent = { lazy('tinyarms.agent', 'command'), { nargs = '*', desc = 'tinyarms: run the agent on a goal' } },
  TinyarmsAgentCancel = { lazy('tinyarms.agent', 'cancel'), { nargs = 0, desc = 'tinyarms: stop the agent run' } },
  TinyarmsAgentUndo = { lazy('tinyarms.agent', 'undo'), { nargs = 0, desc = 'tinyarms: undo the last agent run' } },
}

-- Completion: inline (ghost text) on 0.12+, the completion menu on 0.11.
local function enable_completion(client, bufnr)
  if vim.g.tinyarms_completion == false then
    return
  end
  if vim.lsp.inline_completion and client:supports_method('textDocument/inlineCompletion', bufnr) then
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    local key = vim.g.tinyarms_accept_key == nil and '<Tab>' or vim.g.tinyarms_accept_key
    if key then
      vim.keymap.set('i', key, function()
        return vim.lsp.inline_completion.get() and '' or key
      end, { buffer = bufnr, expr = true, replace_keycodes = true, desc = 'tinyarms: accept the suggestion' })
    end
  elseif client:supports_method('textDocument/completion', bufnr) then
    vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = true })
    require('tinyarms.feedback').attach(bufnr)
  end
end

--- Set up a buffer the tinyarms client just attached to. The commands are global (and
--- created again on each attach, harmlessly) so they also work from an answer float.
function M.on_attach(client, bufnr)
  for name, spec in pairs(user_commands) do
    vim.api.nvim_create_user_command(name, spec[1], spec[2])
  end
  enable_completion(client, bufnr)
  require('tinyarms.cursor').attach(client, bufnr)
end

--- Idempotent: the LspAttach autocmd that calls on_attach for the tinyarms client.
function M.register()
  local group = vim.api.nvim_create_augroup('tinyarms', { clear = true })
  vim.api.nvim_create_autocmd('LspAttach', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == 'tinyarms' then
        M.on_attach(client, args.buf)
      end
    end,
  })
end

-- Server notifications -----------------------------------------------------------------

M.handlers = {
  -- Neovim's own handler applies the edit (so `u` undoes it); during an agent run the
  -- buffers it changed are written, as the agent reads the files from disk.
  ['workspace/applyEdit'] = function(err, params, ctx)
    local modified = {}
    for _, buf in ipairs(vim.api.nvim_list_bufs()) do
      modified[buf] = vim.api.nvim_buf_is_loaded(buf) and vim.bo[buf].modified or nil
    end
    local result = vim.lsp.handlers['workspace/applyEdit'](err, params, ctx)
    if result and result.applied and params then
      require('tinyarms.agent').edit_applied(params.edit, modified)
    end
    return result
  end,
  ['tinyarms/stream'] = function(_, params)
    local stream = params and streams[params.stream_id]
    if not stream then
      return
    end
    if params.restart then
      -- A fallback tier starts the answer again: clear what was shown, say why.
      stream.text = ''
      stream.note = params.reason
    else
      stream.text = stream.text .. (params.delta or '')
      stream.chunks = stream.chunks + 1
    end
    local prefix = stream.note and ('(restarted: ' .. stream.note .. ')\n') or ''
    if stream.on_text then
      stream.on_text(prefix .. stream.text)
    else
      set_buf_text(stream.buf, prefix .. stream.text)
    end
  end,
  ['tinyarms/status'] = function(_, params)
    if type(params) ~= 'table' or not params.kind then
      return
    end
    M.last_status[params.kind] = params
    vim.api.nvim_exec_autocmds('User', { pattern = 'TinyarmsStatus', modeline = false, data = params })
  end,
}

--- "route chat -> tier local, 840 ms, $0.00012" for an answer (chat, edit, agent).
function M.answer_line(decision, elapsed_ms, cost_usd)
  if is_nil(decision) then
    return ('no decision, %s ms'):format(fmt_number(elapsed_ms, '%.0f'))
  end
  local cost = not is_nil(cost_usd) and cost_usd or decision.cost_usd
  return ('route %s -> tier %s, %s ms%s'):format(
    is_nil(decision.route) and 'none' or decision.route,
    decision.tier or '?',
    fmt_number(elapsed_ms, '%.0f'),
    is_nil(cost) and '' or (', $%.5f'):format(cost)
  )
end

--- Record the last answer for the statusline; fires `User TinyarmsStatus`.
function M.answered(decision, elapsed_ms, cost_usd)
  if is_nil(decision) then
    return
  end
  local cost = not is_nil(cost_usd) and cost_usd or decision.cost_usd
  M.last_answer = {
    kind = 'answer',
    route = decision.route,
    role = decision.role,
    tier = decision.tier,
    elapsed_ms = elapsed_ms,
    cost_usd = not is_nil(cost) and cost or nil,
    at = vim.uv.hrtime(),
  }
  vim.api.nvim_exec_autocmds('User', { pattern = 'TinyarmsStatus', modeline = false, data = M.last_answer })
end

-- Client-side handlers for the commands the server's code actions and chat actions name, so
-- they take the editor's own path: an edit shows its diff first, a chat turn goes to the chat
-- buffer, an agent goal streams into the agent buffer (lsp/tinyarms.lua passes these as the
-- client's `commands`).
M.client_commands = {
  ['tinyarms.edit'] = function(command)
    require('tinyarms.edit').propose((command.arguments or {})[1] or {})
  end,
  ['tinyarms.chat'] = function(command, ctx)
    local argument = (command.arguments or {})[1] or {}
    require('tinyarms.chat').send(argument.text or '', { bufnr = ctx and ctx.bufnr, range = argument.range })
  end,
  ['tinyarms.agent'] = function(command)
    require('tinyarms.agent').run((command.arguments or {})[1] or {})
  end,
}

--- A short text for statuslines: the tier, latency and cost of the last answer (chat, edit,
--- agent), else the latest completion or routed request.
function M.statusline()
  local answer = M.last_answer
  if answer then
    return ('tinyarms %s %s ms%s'):format(
      answer.tier or '?',
      fmt_number(answer.elapsed_ms, '%.0f'),
      answer.cost_usd and (' $%.4f'):format(answer.cost_usd) or ''
    )
  end
  local latest = M.last_status.decision or M.last_status.completion
  if not latest then
    return ''
  end
  if latest.kind == 'decision' then
    return ('tinyarms %s->%s'):format(is_nil(latest.route) and 'chat' or latest.route, latest.tier or '?')
  end
  return ('tinyarms %s %s ms'):format(latest.tier or '?', fmt_number(latest.elapsed_ms, '%.0f'))
end

return M
