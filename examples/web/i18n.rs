//! The screens' words, in Portuguese (as in the help page the screens come
//! from) and English, chosen by the browser's language.

/// A language of the screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    /// Português (Brasil).
    Pt,
    /// English.
    En,
}

impl Lang {
    /// From an `Accept-Language` header: the first of pt or en it names,
    /// English otherwise.
    pub(crate) fn from_header(header: Option<&str>) -> Self {
        let Some(header) = header else {
            return Self::En;
        };
        for part in header.split(',') {
            let tag = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if tag.starts_with("pt") {
                return Self::Pt;
            }
            if tag.starts_with("en") {
                return Self::En;
            }
        }
        Self::En
    }

    /// The `lang` attribute.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Pt => "pt-BR",
            Self::En => "en",
        }
    }

    /// The words for `key` (the key itself when it has none).
    pub(crate) fn t(self, key: &'static str) -> &'static str {
        let pt = self == Self::Pt;
        macro_rules! words {
            ($($key:literal => $pt:literal, $en:literal;)*) => {
                match key {
                    $($key => if pt { $pt } else { $en },)*
                    _ => key,
                }
            };
        }
        words! {
            "sign_in" => "Entrar", "Sign in";
            "login" => "Usuário", "Login";
            "password" => "Senha", "Password";
            "sign_in_failed" => "Usuário ou senha incorretos.", "Wrong login or password.";
            "sign_out" => "Sair", "Sign out";
            "inbox" => "Caixa de entrada", "Inbox";
            "settings" => "Configurações", "Settings";
            "mailboxes" => "Contas POP3", "POP3 accounts";
            "admin" => "Administração", "Administration";
            "compose" => "Escrever", "Compose";
            "people" => "Contatos e leads", "Contacts and leads";
            "add_account" => "Adicionar conta", "Add account";
            "sign_in_with" => "Entrar com", "Sign in with";
            "add_pop3" => "Adicionar conta POP3", "Add POP3 account";
            "account_name" => "Nome da conta", "Account name";
            "email" => "Endereço de e-mail", "E-mail address";
            "incoming_server" => "Servidor de entrada", "Incoming server";
            "port" => "Porta", "Port";
            "ssl" => "Usar SSL", "Use SSL";
            "username" => "Nome de usuário", "User name";
            "password_hint" => "Com a verificação em duas etapas ativa, use uma senha de app.", "With two-factor authentication on, use an app-specific password.";
            "same_outgoing" => "Usar as mesmas credenciais para o servidor de saída", "Use the same credentials for the outgoing server";
            "outgoing" => "Servidor de saída (SMTP)", "Outgoing server (SMTP)";
            "outgoing_server" => "Servidor de saída", "Outgoing server";
            "outgoing_port" => "Porta de saída", "Outgoing port";
            "outgoing_ssl" => "Usar SSL na saída", "Use SSL for outgoing";
            "outgoing_username" => "Usuário de saída", "Outgoing user name";
            "outgoing_password" => "Senha de saída", "Outgoing password";
            "outgoing_note" => "O usuário e a senha de saída aparecem quando o servidor de saída usa outras credenciais.", "The outgoing user name and password show when the outgoing server uses other credentials.";
            "delete_policy" => "Excluir mensagens do servidor", "Delete messages from the server";
            "never" => "Nunca", "Never";
            "after-retrieval" => "Depois de recuperadas", "After retrieval";
            "after-days" => "Depois de alguns dias", "After some days";
            "when-deleted-locally" => "Quando excluídas aqui", "When deleted here";
            "delete_after_days" => "Dias", "Days";
            "gmail_note" => "Gmail: para receber também as mensagens já lidas em outros dispositivos, use recent: antes do usuário (recent:voce@gmail.com); nesse modo as mensagens nunca são excluídas do servidor.", "Gmail: to receive mail already read on other devices too, put recent: before the user name (recent:you@gmail.com); in that mode messages are never deleted from the server.";
            "recent_delete" => "Com recent: o Gmail mostra sempre as mesmas mensagens; excluí-las não é possível. Escolha Nunca.", "With recent: Gmail lists the same messages every time; they cannot be deleted. Choose Never.";
            "sharing" => "Compartilhamento", "Sharing";
            "private" => "Somente eu", "Only me";
            "everyone" => "Todos os usuários", "Every user";
            "sharing_fixed" => "Definido pelo administrador", "Set by the administrator";
            "no_mailboxes" => "Nenhuma conta POP3 ainda.", "No POP3 account yet.";
            "active" => "Ativa", "Active";
            "activate" => "Ativar", "Activate";
            "edit" => "Editar", "Edit";
            "remove" => "Excluir configurações", "Delete settings";
            "last_sync" => "Última sincronização", "Last sync";
            "health" => "Situação", "Health";
            "health_ok" => "Funcionando", "Working";
            "health_never" => "Ainda não sincronizada", "Not synced yet";
            "health_failing" => "Falhando; nova tentativa em breve", "Failing; retried soon";
            "health_paused" => "Pausada: precisa de sua ação", "Paused: needs your action";
            "incoming_password" => "Senha de entrada", "Incoming password";
            "change_incoming" => "Alterar a senha de entrada", "Change the incoming password";
            "change_outgoing" => "Alterar a senha de saída", "Change the outgoing password";
            "changed" => "Senha alterada e verificada.", "Password changed and verified.";
            "changed_meanwhile" => "As configurações desta conta mudaram enquanto a senha era verificada; nada foi salvo. Tente novamente.", "This mailbox's settings changed while the password was being verified; nothing was saved. Try again.";
            "kept_old" => "A nova senha não funcionou; a anterior foi mantida.", "The new password did not work; the old one is kept.";
            "added" => "Conta adicionada e verificada.", "Account added and verified.";
            "nothing_saved" => "Nada foi salvo.", "Nothing was saved.";
            "from" => "De", "From";
            "to" => "Para", "To";
            "subject" => "Assunto", "Subject";
            "date" => "Data", "Date";
            "linked" => "Vinculada a", "Linked to";
            "no_mail" => "Nenhuma mensagem.", "No messages.";
            "shared_from" => "Compartilhada por", "Shared by";
            "lead" => "Lead", "Lead";
            "contact" => "Contato", "Contact";
            "lead_mail" => "Mensagens deste lead", "This lead's mail";
            "change_email" => "Alterar o e-mail", "Change the e-mail address";
            "lead_faq" => "As mensagens são vinculadas pelo endereço: ao alterar o e-mail do lead, passam a aparecer as mensagens com o novo endereço e deixam de aparecer as com o antigo (nenhuma mensagem é apagada).", "Mail is linked by address: when the lead's e-mail changes, the mail that carries the new address appears here and the mail with the old one no longer does (no mail is deleted).";
            "send" => "Enviar", "Send";
            "body" => "Mensagem", "Message";
            "sent" => "Mensagem enviada.", "Message sent.";
            "send_failed" => "O envio falhou", "Sending failed";
            "no_active" => "Nenhuma conta ativa: adicione ou ative uma.", "No active account: add or activate one.";
            "policy" => "Permissão de compartilhamento", "Sharing permission";
            "fixed-private" => "Sempre somente o dono", "Always the owner only";
            "fixed-everyone" => "Sempre todos os usuários", "Always every user";
            "user-chooses" => "Cada usuário escolhe", "Each user chooses";
            "save" => "Salvar", "Save";
            "saved" => "Salvo.", "Saved.";
            "not_admin" => "Somente o administrador altera esta permissão.", "Only the administrator changes this permission.";
            "step" => "Etapa", "Step";
            "remedy" => "O que fazer", "What to do";
            "required" => "Obrigatório.", "Required.";
            "bad_port" => "Uma porta entre 1 e 65535.", "A port between 1 and 65535.";
            "bad_days" => "Um número de dias de 1 a 3650.", "A number of days from 1 to 3650.";
            "exists" => "Já existe uma conta com este nome.", "An account of this name exists already.";
            "faq" => "Perguntas frequentes", "Questions";
            "faq_sharing" => "Outros usuários veem minhas mensagens? Somente se a conta for compartilhada com todos; o administrador pode fixar essa escolha.", "Do other users see my mail? Only when the account is shared with everyone; the administrator may fix that choice.";
            "faq_limits" => "Há limite de envio? Cada provedor tem o seu (o Gmail, cerca de 500 por dia); uma recusa mostra o motivo dado pelo servidor.", "Is there a sending limit? Each provider has its own (Gmail: about 500 a day); a refusal shows the server's reason.";
        }
    }
}
