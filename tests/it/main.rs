
mod load;
