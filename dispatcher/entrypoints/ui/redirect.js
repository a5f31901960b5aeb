// The sign-in redirect page: MSAL.js's redirect bridge hands Entra ID's answer back to the page that asked, which
// redeems it. The answer never reaches the server: it is in this page's fragment or query, and the bridge clears it.
"use strict";

document.addEventListener(
  "DOMContentLoaded",
  () => {
    msalRedirectBridge.broadcastResponseToMainFrame().catch((error) => {
      document.getElementById("status").textContent = `Sign-in failed: ${error.errorCode || error.message}`;
    });
  },
  { once: true },
);
