//! Trait objects that are still burn modules.
//!
//! burn's [`Module`] is not object safe (generic `visit`/`map`, `Clone`), yet the zoo must hold
//! whatever backbone, placement and head a spec names. Each plugin kind is an object-safe trait
//! (`Backbone`, `Placement`, `Head`) whose supertrait, declared by
//! [`erasable_kind!`](crate::erasable_kind), carries the module plumbing for every
//! `#[derive(Module)]` type; [`Erased`] wraps the trait object back into a real [`Module`]:
//! parameter visiting and mapping, optimizer steps, freezing, device moves and burn-store
//! save/load all work through it unchanged.
use crate::erased::{DynFromMapper, DynFromVisitor, DynMapper, DynVisitor};
use burn::module::{
    Content, Devices, DisplaySettings, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper,
    ModuleVisitor,
};
use burn::tensor::Device;
use std::any::Any;
use std::fmt::Debug;
use std::ops::Deref;

/// Module plumbing of a boxed plugin trait object (`dyn Backbone`, `dyn Placement`, `dyn Head`).
///
/// Never implemented by hand: [`erasable_kind!`](crate::erasable_kind) implements it for the
/// trait object of a plugin kind.
pub trait ModuleOps: Send + Debug + 'static {
    /// Clones into a new box.
    fn clone_boxed(&self) -> Box<Self>;
    /// [`Module::visit`] through the object-safe visitor.
    fn visit_erased(&self, visitor: &mut dyn DynVisitor);
    /// [`Module::map`] through the object-safe mapper.
    fn map_erased(self: Box<Self>, mapper: &mut dyn DynMapper) -> Box<Self>;
    /// [`Module::collect_devices`].
    fn collect_devices_erased(&self, devices: Devices) -> Devices;
    /// [`Module::fork`].
    fn fork_erased(self: Box<Self>, device: &Device) -> Box<Self>;
    /// [`Module::to_device`].
    fn to_device_erased(self: Box<Self>, device: &Device) -> Box<Self>;
    /// [`Module::train`].
    fn train_erased(self: Box<Self>) -> Box<Self>;
    /// [`Module::valid`].
    fn valid_erased(&self) -> Box<Self>;
    /// [`Module::materialize`].
    fn materialize_erased(self: Box<Self>) -> Box<Self>;
    /// [`ModuleDisplay::format`].
    fn format_erased(&self, settings: DisplaySettings) -> String;
    /// Rust type name of the concrete module (for display and errors).
    fn type_name(&self) -> &'static str;
    /// The concrete module, for downcasting in tests and tools.
    fn as_any(&self) -> &dyn Any;
}

/// Declares the module plumbing of a plugin kind.
///
/// `erasable_kind!(BackboneOps for Backbone)` defines the supertrait `BackboneOps` (implemented
/// for every `Module + ModuleDisplay + Backbone` type) and [`ModuleOps`] for `dyn Backbone`, so
/// `Erased<dyn Backbone>` is a burn module. The kind's trait must be declared as
/// `pub trait Backbone: BackboneOps { … }`.
#[macro_export]
macro_rules! erasable_kind {
    ($ops:ident for $tr:ident) => {
        /// Module plumbing of this plugin kind; implemented automatically for every
        /// `#[derive(Module)]` type that implements the kind's trait.
        pub trait $ops: Send + ::std::fmt::Debug + 'static {
            #[doc(hidden)]
            fn ops_clone(&self) -> Box<dyn $tr>;
            #[doc(hidden)]
            fn ops_visit(&self, visitor: &mut dyn $crate::erased::DynVisitor);
            #[doc(hidden)]
            fn ops_map(self: Box<Self>, mapper: &mut dyn $crate::erased::DynMapper)
            -> Box<dyn $tr>;
            #[doc(hidden)]
            fn ops_collect_devices(
                &self,
                devices: ::burn::module::Devices,
            ) -> ::burn::module::Devices;
            #[doc(hidden)]
            fn ops_fork(self: Box<Self>, device: &::burn::tensor::Device) -> Box<dyn $tr>;
            #[doc(hidden)]
            fn ops_to_device(self: Box<Self>, device: &::burn::tensor::Device) -> Box<dyn $tr>;
            #[doc(hidden)]
            fn ops_train(self: Box<Self>) -> Box<dyn $tr>;
            #[doc(hidden)]
            fn ops_valid(&self) -> Box<dyn $tr>;
            #[doc(hidden)]
            fn ops_materialize(self: Box<Self>) -> Box<dyn $tr>;
            #[doc(hidden)]
            fn ops_format(&self, settings: ::burn::module::DisplaySettings) -> String;
            #[doc(hidden)]
            fn ops_type_name(&self) -> &'static str;
            #[doc(hidden)]
            fn ops_as_any(&self) -> &dyn ::std::any::Any;
        }

        impl<M> $ops for M
        where
            M: $tr + ::burn::module::Module + ::burn::module::ModuleDisplay + 'static,
        {
            fn ops_clone(&self) -> Box<dyn $tr> {
                Box::new(self.clone())
            }
            fn ops_visit(&self, visitor: &mut dyn $crate::erased::DynVisitor) {
                ::burn::module::Module::visit(self, &mut $crate::erased::VisitorToDyn(visitor))
            }
            fn ops_map(
                self: Box<Self>,
                mapper: &mut dyn $crate::erased::DynMapper,
            ) -> Box<dyn $tr> {
                Box::new(::burn::module::Module::map(
                    *self,
                    &mut $crate::erased::MapperToDyn(mapper),
                ))
            }
            fn ops_collect_devices(
                &self,
                devices: ::burn::module::Devices,
            ) -> ::burn::module::Devices {
                ::burn::module::Module::collect_devices(self, devices)
            }
            fn ops_fork(self: Box<Self>, device: &::burn::tensor::Device) -> Box<dyn $tr> {
                Box::new(::burn::module::Module::fork(*self, device))
            }
            fn ops_to_device(self: Box<Self>, device: &::burn::tensor::Device) -> Box<dyn $tr> {
                Box::new(::burn::module::Module::to_device(*self, device))
            }
            fn ops_train(self: Box<Self>) -> Box<dyn $tr> {
                Box::new(::burn::module::Module::train(*self))
            }
            fn ops_valid(&self) -> Box<dyn $tr> {
                Box::new(::burn::module::Module::valid(self))
            }
            fn ops_materialize(self: Box<Self>) -> Box<dyn $tr> {
                Box::new(::burn::module::Module::materialize(*self))
            }
            fn ops_format(&self, settings: ::burn::module::DisplaySettings) -> String {
                ::burn::module::ModuleDisplay::format(self, settings)
            }
            fn ops_type_name(&self) -> &'static str {
                ::std::any::type_name::<M>()
            }
            fn ops_as_any(&self) -> &dyn ::std::any::Any {
                self
            }
        }

        impl $crate::ModuleOps for dyn $tr {
            fn clone_boxed(&self) -> Box<Self> {
                self.ops_clone()
            }
            fn visit_erased(&self, visitor: &mut dyn $crate::erased::DynVisitor) {
                self.ops_visit(visitor)
            }
            fn map_erased(
                self: Box<Self>,
                mapper: &mut dyn $crate::erased::DynMapper,
            ) -> Box<Self> {
                self.ops_map(mapper)
            }
            fn collect_devices_erased(
                &self,
                devices: ::burn::module::Devices,
            ) -> ::burn::module::Devices {
                self.ops_collect_devices(devices)
            }
            fn fork_erased(self: Box<Self>, device: &::burn::tensor::Device) -> Box<Self> {
                self.ops_fork(device)
            }
            fn to_device_erased(self: Box<Self>, device: &::burn::tensor::Device) -> Box<Self> {
                self.ops_to_device(device)
            }
            fn train_erased(self: Box<Self>) -> Box<Self> {
                self.ops_train()
            }
            fn valid_erased(&self) -> Box<Self> {
                self.ops_valid()
            }
            fn materialize_erased(self: Box<Self>) -> Box<Self> {
                self.ops_materialize()
            }
            fn format_erased(&self, settings: ::burn::module::DisplaySettings) -> String {
                self.ops_format(settings)
            }
            fn type_name(&self) -> &'static str {
                self.ops_type_name()
            }
            fn as_any(&self) -> &dyn ::std::any::Any {
                self.ops_as_any()
            }
        }
    };
}

/// A boxed plugin of kind `T` that is itself a burn [`Module`].
pub struct Erased<T: ?Sized>(Box<T>);

impl<T: ?Sized + ModuleOps> Erased<T> {
    /// Wraps an already boxed plugin.
    pub fn new(inner: Box<T>) -> Self {
        Self(inner)
    }
    /// The concrete plugin type, if it is `C`.
    pub fn downcast_ref<C: 'static>(&self) -> Option<&C> {
        self.0.as_any().downcast_ref()
    }
}

impl<T: ?Sized> Deref for Erased<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized + ModuleOps> Clone for Erased<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone_boxed())
    }
}

impl<T: ?Sized + ModuleOps> Debug for Erased<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Debug::fmt(&*self.0, f)
    }
}

impl<T: ?Sized + ModuleOps> Module for Erased<T> {
    fn collect_devices(&self, devices: Devices) -> Devices {
        self.0.collect_devices_erased(devices)
    }
    fn fork(self, device: &Device) -> Self {
        Self(self.0.fork_erased(device))
    }
    fn to_device(self, device: &Device) -> Self {
        Self(self.0.to_device_erased(device))
    }
    fn train(self) -> Self {
        Self(self.0.train_erased())
    }
    fn valid(&self) -> Self {
        Self(self.0.valid_erased())
    }
    fn materialize(self) -> Self {
        Self(self.0.materialize_erased())
    }
    fn visit<V: ModuleVisitor>(&self, visitor: &mut V) {
        self.0.visit_erased(&mut DynFromVisitor(visitor))
    }
    fn map<M: ModuleMapper>(self, mapper: &mut M) -> Self {
        Self(self.0.map_erased(&mut DynFromMapper(mapper)))
    }
}

impl<T: ?Sized + ModuleOps> ModuleDisplayDefault for Erased<T> {
    fn content(&self, content: Content) -> Option<Content> {
        content
            .set_top_level_type("Erased")
            .add_debug_attribute("type", &self.0.type_name())
            .optional()
    }
}

impl<T: ?Sized + ModuleOps> ModuleDisplay for Erased<T> {
    fn format(&self, settings: DisplaySettings) -> String {
        self.0.format_erased(settings)
    }
}
