//! The fault suite: what hostile peers, odd files in the plugins folder, a full disk and kills at
//! random moments must not break. Each module states the faults it throws and what must hold.

mod disk_full;
mod plugins_folder;
mod rest_fuzz;
mod sigkill;
mod zmtp;
