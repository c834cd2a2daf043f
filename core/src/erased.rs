//! Object-safe bridges for burn's generic `ModuleVisitor` / `ModuleMapper`.
//!
//! burn's `Module::visit<V>` / `Module::map<M>` are generic over the visitor, so a trait object
//! cannot forward them directly. The visitor is erased into `&mut dyn DynVisitor`: parameters
//! travel as `&dyn Any` / `Box<dyn Any>` together with their rank, and the concrete generic call
//! is rebuilt on the other side by matching the rank (1..=6) and downcasting.
use burn::module::{Flag, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Bool, Int, Tensor};
use std::any::Any;

/// Object-safe twin of [`ModuleVisitor`].
pub trait DynVisitor {
    /// See [`ModuleVisitor::enter_module`].
    fn enter_module(&mut self, name: &str, container_type: &str);
    /// See [`ModuleVisitor::exit_module`].
    fn exit_module(&mut self, name: &str, container_type: &str);
    /// A float parameter of the given rank, as `&Param<Tensor<rank>>`.
    fn visit_float(&mut self, rank: usize, param: &dyn Any);
    /// An int parameter of the given rank, as `&Param<Tensor<rank, Int>>`.
    fn visit_int(&mut self, rank: usize, param: &dyn Any);
    /// A bool parameter of the given rank, as `&Param<Tensor<rank, Bool>>`.
    fn visit_bool(&mut self, rank: usize, param: &dyn Any);
    /// A module-owned training flag.
    fn visit_flag(&mut self, flag: &Param<Flag>);
}

/// Object-safe twin of [`ModuleMapper`].
pub trait DynMapper {
    /// See [`ModuleMapper::enter_module`].
    fn enter_module(&mut self, name: &str, container_type: &str);
    /// See [`ModuleMapper::exit_module`].
    fn exit_module(&mut self, name: &str, container_type: &str);
    /// Maps a boxed `Param<Tensor<rank>>`.
    fn map_float(&mut self, rank: usize, param: Box<dyn Any>) -> Box<dyn Any>;
    /// Maps a boxed `Param<Tensor<rank, Int>>`.
    fn map_int(&mut self, rank: usize, param: Box<dyn Any>) -> Box<dyn Any>;
    /// Maps a boxed `Param<Tensor<rank, Bool>>`.
    fn map_bool(&mut self, rank: usize, param: Box<dyn Any>) -> Box<dyn Any>;
    /// Maps a module-owned training flag.
    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag>;
}

/// A concrete [`ModuleVisitor`] that forwards to a `dyn DynVisitor` (used inside erased modules).
pub struct VisitorToDyn<'a>(pub &'a mut dyn DynVisitor);

impl ModuleVisitor for VisitorToDyn<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        self.0.visit_float(D, p)
    }
    fn visit_int<const D: usize>(&mut self, p: &Param<Tensor<D, Int>>) {
        self.0.visit_int(D, p)
    }
    fn visit_bool<const D: usize>(&mut self, p: &Param<Tensor<D, Bool>>) {
        self.0.visit_bool(D, p)
    }
    fn visit_flag(&mut self, f: &Param<Flag>) {
        self.0.visit_flag(f)
    }
    fn enter_module(&mut self, n: &str, c: &str) {
        self.0.enter_module(n, c)
    }
    fn exit_module(&mut self, n: &str, c: &str) {
        self.0.exit_module(n, c)
    }
}

/// A concrete [`ModuleMapper`] that forwards to a `dyn DynMapper` (used inside erased modules).
pub struct MapperToDyn<'a>(pub &'a mut dyn DynMapper);

impl ModuleMapper for MapperToDyn<'_> {
    fn enter_module(&mut self, n: &str, c: &str) {
        self.0.enter_module(n, c)
    }
    fn exit_module(&mut self, n: &str, c: &str) {
        self.0.exit_module(n, c)
    }
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        *self
            .0
            .map_float(D, Box::new(p))
            .downcast()
            .expect("erased mapper changed a float param's type")
    }
    fn map_int<const D: usize>(&mut self, p: Param<Tensor<D, Int>>) -> Param<Tensor<D, Int>> {
        *self
            .0
            .map_int(D, Box::new(p))
            .downcast()
            .expect("erased mapper changed an int param's type")
    }
    fn map_bool<const D: usize>(&mut self, p: Param<Tensor<D, Bool>>) -> Param<Tensor<D, Bool>> {
        *self
            .0
            .map_bool(D, Box::new(p))
            .downcast()
            .expect("erased mapper changed a bool param's type")
    }
    fn map_flag(&mut self, f: Param<Flag>) -> Param<Flag> {
        self.0.map_flag(f)
    }
}

/// Wraps the caller's concrete visitor as a [`DynVisitor`] (used by the erased box).
pub struct DynFromVisitor<'a, V: ModuleVisitor>(pub &'a mut V);

/// Wraps the caller's concrete mapper as a [`DynMapper`] (used by the erased box).
pub struct DynFromMapper<'a, M: ModuleMapper>(pub &'a mut M);

macro_rules! by_rank {
    ($rank:expr, $go:ident) => {
        match $rank {
            1 => $go!(1),
            2 => $go!(2),
            3 => $go!(3),
            4 => $go!(4),
            5 => $go!(5),
            6 => $go!(6),
            r => panic!("erased module bridge: parameters of rank {r} are not supported (1..=6)"),
        }
    };
}

const WRONG_TYPE: &str = "erased module bridge: parameter type does not match its rank";

impl<V: ModuleVisitor> DynVisitor for DynFromVisitor<'_, V> {
    fn enter_module(&mut self, n: &str, c: &str) {
        self.0.enter_module(n, c)
    }
    fn exit_module(&mut self, n: &str, c: &str) {
        self.0.exit_module(n, c)
    }
    fn visit_float(&mut self, rank: usize, p: &dyn Any) {
        macro_rules! go {
            ($d:literal) => {
                self.0
                    .visit_float::<$d>(p.downcast_ref::<Param<Tensor<$d>>>().expect(WRONG_TYPE))
            };
        }
        by_rank!(rank, go)
    }
    fn visit_int(&mut self, rank: usize, p: &dyn Any) {
        macro_rules! go {
            ($d:literal) => {
                self.0.visit_int::<$d>(
                    p.downcast_ref::<Param<Tensor<$d, Int>>>()
                        .expect(WRONG_TYPE),
                )
            };
        }
        by_rank!(rank, go)
    }
    fn visit_bool(&mut self, rank: usize, p: &dyn Any) {
        macro_rules! go {
            ($d:literal) => {
                self.0.visit_bool::<$d>(
                    p.downcast_ref::<Param<Tensor<$d, Bool>>>()
                        .expect(WRONG_TYPE),
                )
            };
        }
        by_rank!(rank, go)
    }
    fn visit_flag(&mut self, f: &Param<Flag>) {
        self.0.visit_flag(f)
    }
}

impl<M: ModuleMapper> DynMapper for DynFromMapper<'_, M> {
    fn enter_module(&mut self, n: &str, c: &str) {
        self.0.enter_module(n, c)
    }
    fn exit_module(&mut self, n: &str, c: &str) {
        self.0.exit_module(n, c)
    }
    fn map_float(&mut self, rank: usize, p: Box<dyn Any>) -> Box<dyn Any> {
        macro_rules! go {
            ($d:literal) => {
                Box::new(
                    self.0
                        .map_float::<$d>(*p.downcast::<Param<Tensor<$d>>>().expect(WRONG_TYPE)),
                )
            };
        }
        by_rank!(rank, go)
    }
    fn map_int(&mut self, rank: usize, p: Box<dyn Any>) -> Box<dyn Any> {
        macro_rules! go {
            ($d:literal) => {
                Box::new(
                    self.0
                        .map_int::<$d>(*p.downcast::<Param<Tensor<$d, Int>>>().expect(WRONG_TYPE)),
                )
            };
        }
        by_rank!(rank, go)
    }
    fn map_bool(&mut self, rank: usize, p: Box<dyn Any>) -> Box<dyn Any> {
        macro_rules! go {
            ($d:literal) => {
                Box::new(
                    self.0.map_bool::<$d>(
                        *p.downcast::<Param<Tensor<$d, Bool>>>().expect(WRONG_TYPE),
                    ),
                )
            };
        }
        by_rank!(rank, go)
    }
    fn map_flag(&mut self, f: Param<Flag>) -> Param<Flag> {
        self.0.map_flag(f)
    }
}
