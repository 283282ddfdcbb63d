import "./style.css";

const message = "Hello from a Vite app on Velocity";

document.querySelector("#app").innerHTML = `<h1>${message}</h1><p>Vite reloads this page as soon as an edit lands.</p>`;
