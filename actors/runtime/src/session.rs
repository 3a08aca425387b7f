//! What the gateway holds of a logged-in connection: a [`Session`] to send commands and report a lost
//! connection through, wherever the user's actor lives.

use showcall_machines::{ConnId, UserId};
use showcall_protocol::commands::{CommandOk, UserCommand};
use showcall_protocol::{AppId, CommandError};

use crate::hub::Hub;

/// One logged-in connection's handle on its user actor.
#[derive(Clone, Debug)]
pub struct Session {
    pub(crate) hub: Hub,
    pub(crate) app: AppId,
    pub(crate) user: UserId,
    pub(crate) conn: ConnId,
}

impl Session {
    pub fn app(&self) -> &AppId {
        &self.app
    }

    pub fn user(&self) -> &UserId {
        &self.user
    }

    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Sends a command to the user's actor (on whichever node owns it) and waits for its answer.
    pub async fn command(&self, command: UserCommand) -> Result<CommandOk, CommandError> {
        self.hub
            .user_command(&self.app, &self.user, self.conn, command)
            .await
    }

    /// The connection dropped: the session enters its grace period.
    pub fn connection_lost(&self) {
        // A stopped actor means the session already ended; nothing to tell.
        self.hub.connection_lost(&self.app, &self.user, self.conn);
    }
}
