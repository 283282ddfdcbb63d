import "./style.css";

const message = "Hello from a Vite app on Velocity";

document.querySelector("#app").innerHTML = `<h1>${message}</h1><p>Edits hot-reload without a page refresh.</p>`;
