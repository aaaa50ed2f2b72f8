-- tinyarms for Neovim 0.11+, in the `lsp/` config format: with this directory on
-- 'runtimepath', `vim.lsp.enable('tinyarms')` starts the server for the filetypes below.
-- `tinyarms setup nvim` prints the init.lua lines that do both and point `cmd` at the
-- Python tinyarms is installed in. Override anything with vim.lsp.config('tinyarms', {...}),
-- e.g. settings = { tinyarms = { roles = { chat = { tier = 'local' } } } }.
local tinyarms = require('tinyarms')

-- The user commands and completion are set up from an LspAttach autocmd, so a user's own
-- `on_attach` in vim.lsp.config() does not replace them.
tinyarms.register()

return {
  cmd = { 'tinyarms', 'serve' },
  filetypes = tinyarms.filetypes,
  root_markers = { '.tinyarms.toml', '.git' },
  handlers = tinyarms.handlers,
  commands = tinyarms.client_commands,
}
