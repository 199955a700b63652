importScripts("https://push.example.com/sw.js");
